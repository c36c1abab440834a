"""The send queue page in a browser: the queue in order, a new message appearing by itself, cancel one, clear the
campaign traffic after a confirmation, resume, and the queue emptying itself as a real worker sends."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.services import outreach
from tests.builders import TEST_ACTOR, working_session

pytestmark = pytest.mark.browser

CHAT = "491709999999@c.us"


@pytest.fixture(autouse=True)
def _quick_queue_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    from portal.web import outreach as outreach_pages

    monkeypatch.setattr(outreach_pages, "POLL_SECONDS", 1)


def test_queue_page_follows_the_queue_and_its_controls_work(page, sign_in, shoot, worker, tenant, owner, sim):
    session = working_session(tenant, sim, "Campaign line")
    outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="Europe/Berlin", gap_min=0, gap_max=0)
    outreach.pause_session(tenant, session.id, TEST_ACTOR)
    outreach.enqueue_many(
        tenant,
        [{"session_id": session.id, "chat_id": CHAT, "body": f"Spring offer {n}"} for n in range(2)],
        actor=TEST_ACTOR,
    )
    outreach.enqueue(tenant, session.id, CHAT, body="Your receipt", actor=TEST_ACTOR)
    sign_in(owner)

    page.goto(f"/sessions/{session.id}")
    page.get_by_role("link", name="Send queue").click()
    queue = page.locator("#send-queue")
    expect(queue).to_contain_text("3 messages waiting")
    expect(queue).to_contain_text("The queue is paused")
    rows = queue.locator("tbody tr")
    expect(rows.nth(0)).to_contain_text("Your receipt")  # the transactional lane goes first
    expect(rows.nth(1)).to_contain_text("Spring offer 0")

    outreach.enqueue(tenant, session.id, CHAT, body="Added while watching", actor=TEST_ACTOR)
    expect(queue).to_contain_text("Added while watching", timeout=10000)
    shoot("queue-paused")

    queue.locator("tr", has_text="Your receipt").get_by_role("button", name="Cancel").click()
    expect(page.locator("#send-queue")).not_to_contain_text("Your receipt")

    page.get_by_role("link", name="Clear campaign traffic").click()
    expect(page.get_by_role("heading", name="Cancel every queued campaign message?")).to_be_visible()
    page.get_by_role("button", name="Cancel campaign messages").click()
    expect(page.locator("body")).to_contain_text("Cancelled 2 campaign messages.")
    expect(page.locator("#send-queue")).not_to_contain_text("Spring offer")

    page.get_by_role("button", name="Resume sending").click()
    expect(page.locator("#send-queue")).to_contain_text("Nothing is waiting.", timeout=15000)
    assert [m["body"] for m in sim.sent_messages(session.external_name)] == ["Added while watching"]
    shoot("queue-emptied")
