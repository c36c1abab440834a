"""WhatsApp limits a number while its page is open: the session page shows it by itself, and the send form's
answer says why a new contact has to wait."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.builders import working_session

pytestmark = pytest.mark.browser


def test_a_timelock_shows_as_a_banner_on_the_open_session_page(page, sign_in, worker, tenant, owner, sim):
    session = working_session(tenant, sim, "Outreach line")
    sign_in(owner)
    page.goto(f"/sessions/{session.id}")
    expect(page.locator("#session-live [data-status]")).to_have_attribute("data-status", "WORKING")
    expect(page.locator("#limit-banner")).to_have_count(0)

    # WAHA announces the timelock in a session.status event; the portal reads both limits and shows them.
    sim.set_timelock(session.external_name, True, seconds=3600)

    banner = page.locator("#limit-banner")
    expect(banner).to_be_visible(timeout=20_000)
    expect(banner).to_contain_text("WhatsApp limits this number")
    expect(banner).to_contain_text("Replies to existing chats still go out")
    expect(page.locator("#session-live [data-status]")).to_have_attribute("data-status", "WORKING")

    page.goto("/sessions/")
    expect(page.locator(f"#session-{session.id} [data-limit]")).to_have_text("New contacts limited")
    page.goto("/")
    expect(page.locator(".limited-sessions")).to_contain_text("Outreach line")
