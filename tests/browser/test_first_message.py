"""The path a new user takes, in Chromium against the live portal and the simulator: sign in, create a session,
see its QR, scan it, see WORKING without a reload, send a message, find it in the log and watch it get read."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import WahaSession
from tests.builders import working_session

pytestmark = pytest.mark.browser


def session_named(tenant, name: str) -> WahaSession:
    db.session.expire_all()
    return db.session.scalar(db.select(WahaSession).where(WahaSession.tenant_id == tenant.id, WahaSession.name == name))


def test_new_session_shows_qr_and_turns_working_without_reload(page, sign_in, shoot, worker, tenant, owner, sim):
    sign_in(owner)
    expect(page.get_by_role("heading", name="Get started in three steps")).to_be_visible()
    shoot("dashboard-empty")

    page.get_by_role("link", name="Create your first session").click()
    page.get_by_label("Name").fill("Support line")
    shoot("create-form")
    page.get_by_role("button", name="Create session").click()

    qr = page.get_by_role("img", name="QR code to link WhatsApp with this session")
    expect(qr).to_be_visible(timeout=8000)
    expect(page.locator("[data-countdown]")).to_be_visible()
    shoot("qr")
    # a mark on the document: a reload would wipe it
    page.evaluate("document.documentElement.dataset.sameDocument = 'yes'")

    sim.scan(session_named(tenant, "Support line").external_name, phone="491701234567")

    live = page.locator("#session-live")
    expect(live.locator('[data-status="WORKING"]')).to_be_visible(timeout=8000)
    expect(live).to_contain_text("Connected as +491701234567")
    expect(qr).to_have_count(0)
    expect(page.locator("#pairing-panel")).to_be_empty()
    assert page.evaluate("document.documentElement.dataset.sameDocument") == "yes"
    shoot("working")


def test_sent_message_appears_in_the_log_and_gets_read(page, sign_in, shoot, worker, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    sign_in(owner)
    page.goto(f"/sessions/{session.id}")
    page.get_by_role("link", name="Send a message").first.click()

    expect(page.get_by_label("From session")).to_have_value(session.id)
    page.get_by_label("To").fill("+49 170 9999999")
    page.get_by_label("Message").fill("Hello from the portal")
    shoot("send-form")
    page.get_by_role("button", name="Send").click()

    page.wait_for_url(re.compile(r"/inbox/\?chat=\d+$"))  # the conversation opens in the inbox
    expect(page.locator(".tmsg-out").last).to_contain_text("Hello from the portal")

    page.get_by_role("link", name="Messages", exact=True).click()
    row = page.locator("tr", has_text="Hello from the portal")
    expect(row).to_be_visible()
    expect(row.locator(".ticks-READ")).to_be_visible(timeout=8000)
    expect(row.locator(".ticks-READ")).to_have_attribute("title", "Read")
    shoot("log-read")
    page.emulate_media(color_scheme="dark")
    shoot("log-read-dark")
    page.set_viewport_size({"width": 390, "height": 844})
    shoot("log-read-phone")


def test_send_error_is_shown_in_place_with_the_text_kept(page, sign_in, shoot, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    sign_in(owner)
    page.goto(f"/messages/send?session={session.id}")
    page.get_by_label("To").fill("12")
    page.get_by_label("Message").fill("Keep me")
    page.get_by_role("button", name="Send").click()

    expect(page.locator("#to-error")).to_be_visible()
    expect(page.get_by_label("To")).to_be_focused()
    expect(page.get_by_label("Message")).to_have_value("Keep me")
    # same page; the URL also keeps the form's idempotency key (form_key) for Back
    assert f"/messages/send?session={session.id}" in page.url
    shoot("send-error")


def test_keyboard_alone_creates_a_session(page, sign_in, tenant, owner, sim):
    sign_in(owner)
    page.goto("/sessions/new")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    # from the main landmark, the form's first field comes before any other control of the form
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "name":
            break
    expect(page.get_by_label("Name")).to_be_focused()
    page.keyboard.type("Keyboard line")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", name="Keyboard line")).to_be_visible()
