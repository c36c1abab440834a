"""A session's page follows every status change in Chromium, also after the session was WORKING."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.builders import working_session

pytestmark = pytest.mark.browser


def test_working_session_page_shows_a_failure_and_then_the_restart(page, sign_in, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    sign_in(owner)
    page.goto(f"/sessions/{session.id}")
    live = page.locator("#session-live")
    expect(live.locator("[data-status]")).to_have_attribute("data-status", "WORKING")

    sim.fail(session.external_name)

    expect(live.locator("[data-status]")).to_have_attribute("data-status", "FAILED", timeout=20_000)
    expect(live).to_contain_text("WhatsApp reported a failure")
    start = page.locator("#session-actions").get_by_role("link", name="Start", exact=True)
    expect(start).to_be_visible()  # the controls follow the status too
    page.once("dialog", lambda dialog: dialog.accept())
    start.click()
    expect(page.locator("#session-live [data-status]")).to_have_attribute("data-status", "WORKING", timeout=20_000)


def test_working_session_page_shows_the_qr_after_the_phone_logged_out(page, sign_in, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    sign_in(owner)
    page.goto(f"/sessions/{session.id}")

    sim.logout_from_phone(session.external_name)

    expect(page.locator("#session-live [data-status]")).to_have_attribute("data-status", "SCAN_QR_CODE", timeout=20_000)
    expect(page.get_by_alt_text("QR code to link WhatsApp with this session")).to_be_visible(timeout=10_000)
