"""The simulator's control page in Chromium: it follows the sessions live without wiping what is being typed."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _create(sim, name: str) -> None:
    requests.post(f"{sim.url}/_sim/sessions", json={"name": name}, timeout=5).raise_for_status()


def test_control_page_updates_status_and_keeps_typed_text(page, sim):
    _create(sim, "demo")
    page.goto(f"{sim.url}/_sim/")
    row = page.locator("tr[data-session='demo']")
    expect(row.locator("[data-live='status']")).to_have_text("SCAN_QR_CODE", timeout=5000)
    page.evaluate("document.documentElement.dataset.sameDocument = 'yes'")
    text = row.locator("form[action$='/inbound'] input[name='text']").first
    text.fill("I am typing a long message")

    sim.scan("demo", phone="491701234567")
    _create(sim, "second")  # a new row arrives while typing

    expect(row.locator("[data-live='status']")).to_have_text("WORKING", timeout=8000)
    expect(page.locator("tr[data-session='second']")).to_be_visible(timeout=8000)
    expect(text).to_have_value("I am typing a long message")
    expect(text).to_be_focused()
    assert page.evaluate("document.documentElement.dataset.sameDocument") == "yes"


def test_control_page_without_scripts_still_acts_and_shows_the_live_table(browser, sim):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sim.reset()
        _create(sim, "nojs")
        page.goto(f"{sim.url}/_sim/")
        expect(page.frame_locator("iframe[title='Sessions, live']").locator("tr[data-session='nojs']")).to_be_visible()
        page.locator("tr[data-session='nojs'] form[action$='/fail'] button").click()
        page.wait_for_url(f"{sim.url}/_sim/")
        expect(page.locator("tr[data-session='nojs'] [data-live='status']")).to_have_text("FAILED")
    finally:
        context.close()
