"""A phone whose account asks for its passkey is linked from the open session page, which follows each step live."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.builders import passkey_assertion, scanning_session

pytestmark = pytest.mark.browser


def test_the_page_switches_from_the_qr_to_the_passkey_and_links_the_phone(page, sign_in, tenant, owner, sim):
    session = scanning_session(tenant, "Front desk")
    sign_in(owner)
    page.goto(f"/sessions/{session.id}")
    expect(page.get_by_alt_text("QR code to link WhatsApp with this session")).to_be_visible(timeout=10_000)

    challenge = sim.require_passkey(session.external_name)

    panel = page.locator("#pairing-panel")
    expect(panel.get_by_role("heading", name="Link with a passkey")).to_be_visible(timeout=20_000)
    script = panel.locator("#passkey-script").text_content() or ""
    shown = json.loads(re.search(r"const o = (\{.*?\});", script, re.S).group(1))  # type: ignore[union-attr]
    assert shown["challenge"] == challenge["challenge"]
    panel.get_by_label("The browser's answer (JSON)").fill(json.dumps(passkey_assertion(shown)))
    panel.get_by_role("button", name="Link with this passkey").click()

    expect(page.locator("#session-live [data-status]")).to_have_attribute("data-status", "WORKING", timeout=20_000)
    expect(page.locator("#session-live")).to_contain_text("Connected")
