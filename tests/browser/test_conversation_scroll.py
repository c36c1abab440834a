"""A conversation opens at its newest message with the reply box in view, and follows new messages unless the
reader scrolled up."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.builders import stored_message, working_session

pytestmark = pytest.mark.browser

CHAT = "491709999999@c.us"


def test_conversation_opens_at_the_newest_and_follows_new_messages(page, sign_in, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    for n in range(40):
        stored_message(
            tenant, session, direction="in" if n % 2 else "out", status="READ", chat_id=CHAT, body=f"message number {n}"
        )
    sign_in(owner)
    page.goto(f"/messages/chats/{session.id}/{CHAT}")

    expect(page.get_by_text("message number 39")).to_be_in_viewport()
    expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
    expect(page.get_by_text("message number 0", exact=True)).not_to_be_in_viewport()

    stored_message(tenant, session, direction="in", status="READ", chat_id=CHAT, body="a brand new question")
    expect(page.get_by_text("a brand new question")).to_be_in_viewport(timeout=10_000)

    # the reader scrolls up to read older messages: new ones do not pull the page down
    page.evaluate("window.scrollTo(0, 0)")
    stored_message(tenant, session, direction="in", status="READ", chat_id=CHAT, body="one more while reading")
    expect(page.get_by_text("one more while reading")).to_be_attached(timeout=10_000)
    page.wait_for_timeout(300)
    assert page.evaluate("window.scrollY") == 0
    expect(page.get_by_text("message number 0", exact=True)).to_be_in_viewport()
