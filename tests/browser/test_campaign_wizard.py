"""The campaign wizard in a browser: a CSV uploaded, a refused variable shown next to the message, then a
campaign created that a real worker imports, checks and sends through wahasim while the page's progress polls."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.services import outreach
from tests.builders import TEST_ACTOR, working_session

pytestmark = pytest.mark.browser

UPLOAD = {
    "name": "people.csv",
    "mimeType": "text/csv",
    "buffer": b"phone,name\n+49 170 6000001,Ana\n+49 170 6000002,Bo\nnot a phone,Cy\n+49 170 6000003,Di\n",
}


def test_wizard_creates_a_campaign_that_sends_with_live_progress(page, sign_in, shoot, worker, tenant, owner, sim):
    session = working_session(tenant, sim, "Sales line")
    sim.mark_absent(["491706000003"])
    outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="UTC", gap_min=0, gap_max=0)
    sign_in(owner)
    page.goto("/campaigns/")
    page.get_by_role("link", name="New campaign").click()

    page.get_by_label("Campaign name").fill("Spring sale")
    page.get_by_label("Sales line (working)").check()
    page.get_by_label("CSV file", exact=True).set_input_files(UPLOAD)
    page.get_by_label("Message", exact=True).fill("Hi {{name}}, your code is {{code}}")
    page.get_by_role("button", name="Create campaign").click()
    expect(page.get_by_text("Unknown variable {{code}}.")).to_be_visible()

    page.get_by_label("CSV file", exact=True).set_input_files(UPLOAD)
    page.get_by_label("Message", exact=True).fill("Hi {{name}}, the sale starts today.")
    page.get_by_role("button", name="Create campaign").click()
    expect(page.get_by_role("heading", name="Spring sale")).to_be_visible()
    progress = page.locator("#campaign-progress")
    expect(progress.locator('[data-count="sent"]')).to_have_text("2", timeout=30_000)
    expect(progress.locator('[data-count="skipped"]')).to_have_text("2")  # the bad row and the absent number
    expect(progress.get_by_text("Completed")).to_be_visible(timeout=30_000)
    shoot("progress")
    bodies = sorted(m["body"] for m in sim.sent_messages(session.external_name))
    assert bodies == ["Hi Ana, the sale starts today.", "Hi Bo, the sale starts today."]
