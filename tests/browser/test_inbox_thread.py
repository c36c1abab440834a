"""The inbox's thread pane in a browser: it opens at the newest message, new messages arrive live, and the
composer and message actions work end to end through the live portal, a real worker and wahasim."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.extensions import db
from portal.models import Chat
from portal.services import quick_replies
from tests.builders import TEST_ACTOR, stored_message, working_session
from tests.helpers import wait_for

pytestmark = pytest.mark.browser

CUSTOMER = "491709999999"
CHAT = f"{CUSTOMER}@c.us"


def _chat_with_history(tenant, sim, count: int = 40):
    session = working_session(tenant, sim, "Support line")
    for n in range(count):
        stored_message(tenant, session, direction="in" if n % 2 else "out", status="READ", body=f"message number {n}")
    sim.inbound(session.external_name, from_=CUSTOMER, text="are you open today?")
    chat = wait_for(lambda: db.session.scalar(select(Chat).where(Chat.session_id == session.id)), timeout=10)
    return session, chat


def _open(page, chat):
    page.goto(f"/inbox/chats/{chat.id}")
    expect(page.locator("#thread-root")).to_be_visible()


def test_thread_opens_at_the_newest_and_loads_older_without_jumping(page, sign_in, worker, tenant, owner, sim):
    session, chat = _chat_with_history(tenant, sim, count=60)
    sign_in(owner)
    _open(page, chat)
    expect(page.locator("#thread-root").get_by_text("are you open today?")).to_be_in_viewport()
    expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
    anchor = page.locator("#thread-root").get_by_text("message number 20", exact=True)
    page.locator("#thread-scroll").evaluate("box => { box.scrollTop = 0; }")
    expect(page.locator("#thread-root").get_by_text("message number 0", exact=True)).to_be_attached(timeout=5000)
    top = anchor.bounding_box()["y"]
    page.wait_for_timeout(200)
    assert abs(anchor.bounding_box()["y"] - top) < 2  # the message read stays where it was
    expect(page.locator("#thread-root").get_by_text("message number 0", exact=True)).not_to_be_in_viewport()


def test_opening_marks_read_and_new_messages_arrive_live(page, sign_in, worker, tenant, owner, sim):
    session, chat = _chat_with_history(tenant, sim)
    sign_in(owner)
    _open(page, chat)
    wait_for(lambda: [r["chatId"] for r in sim.read_receipts(session.external_name)] == [CHAT], timeout=5)
    page.locator("#composer textarea").fill("half-typed answer")

    sim.inbound(session.external_name, from_=CUSTOMER, text="Hello again, it is urgent")

    expect(page.locator(".tmsg-in", has_text="Hello again, it is urgent")).to_be_in_viewport(timeout=10_000)
    expect(page.locator("#composer textarea")).to_have_value("half-typed answer")


def test_conversation_address_opens_the_inbox_and_a_reader_scrolled_up_stays_put(
    page, sign_in, worker, tenant, owner, sim
):
    session, chat = _chat_with_history(tenant, sim)
    sign_in(owner)
    page.goto(f"/messages/chats/{session.id}/{CHAT}")
    expect(page).to_have_url(f"{page.url.split('/inbox')[0]}/inbox/?chat={chat.id}")
    expect(page.locator("#thread-root").get_by_text("are you open today?")).to_be_in_viewport()

    sim.inbound(session.external_name, from_=CUSTOMER, text="a brand new question")
    expect(page.locator(".tmsg-in", has_text="a brand new question")).to_be_in_viewport(timeout=10_000)

    # the reader scrolls up to read older messages (not so far that older ones load): new ones do not pull them down
    box = page.locator("#thread-scroll")
    box.evaluate("box => { box.scrollTop = 200; }")
    page.wait_for_timeout(300)
    sim.inbound(session.external_name, from_=CUSTOMER, text="one more while reading")
    expect(page.locator(".tmsg-in", has_text="one more while reading")).to_be_attached(timeout=10_000)
    page.wait_for_timeout(300)
    assert box.evaluate("box => box.scrollTop") == 200
    expect(page.locator(".tmsg-in", has_text="one more while reading")).not_to_be_in_viewport()


def test_send_reply_react_edit_and_delete(page, sign_in, worker, tenant, owner, sim):
    session, chat = _chat_with_history(tenant, sim, count=2)
    tenant.send_rate_per_minute = 600  # four actions in a few seconds: more than the default pacing allows
    db.session.commit()
    sign_in(owner)
    _open(page, chat)
    question = page.locator(".tmsg-in", has_text="are you open today?")
    question.locator("summary").click()
    question.get_by_role("button", name="Reply").click()
    expect(page.locator(".composer-reply")).to_contain_text("are you open today?")
    page.locator("#composer textarea").fill("Yes, until 6 pm")
    page.locator("#composer textarea").press("Enter")
    mine = page.locator(".tmsg-out", has_text="Yes, until 6 pm")
    expect(mine.locator(".tquote")).to_contain_text("are you open today?")
    expect(page.locator("#composer textarea")).to_have_value("")
    assert [m["body"] for m in sim.sent_messages(session.external_name)] == ["Yes, until 6 pm"]

    question.locator("summary").click()
    question.get_by_role("button", name="React 👍").click()
    expect(question.locator(".treactions")).to_contain_text("👍")

    expect(mine.get_by_label("Edit message")).to_be_hidden()  # only after Edit, and Cancel closes it again
    mine.locator("summary").click()
    mine.get_by_role("button", name="Edit").click()
    mine.get_by_role("button", name="Cancel").click()
    expect(mine.get_by_label("Edit message")).to_be_hidden()
    mine.locator("summary").click()
    mine.get_by_role("button", name="Edit").click()
    mine.get_by_label("Edit message").fill("Yes, until 7 pm")
    mine.get_by_role("button", name="Save").click()
    edited = page.locator(".tmsg-out", has_text="Yes, until 7 pm")
    expect(edited.locator(".tedited")).to_be_visible()

    page.once("dialog", lambda dialog: dialog.accept())
    edited.locator("summary").click()
    edited.get_by_role("button", name="Delete for everyone").click()
    expect(page.locator(".tmsg-out.tmsg-deleted")).to_contain_text("This message was deleted")


def test_failed_send_keeps_the_text_and_says_why(page, sign_in, worker, tenant, owner, sim):
    session, chat = _chat_with_history(tenant, sim, count=1)
    sign_in(owner)
    _open(page, chat)
    sim.fail_next(20, status=503)
    page.locator("#composer textarea").fill("this must not be lost")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#thread-error")).to_be_visible()
    expect(page.locator("#composer textarea")).to_have_value("this must not be lost")


def test_quick_reply_is_inserted_from_the_slash_picker(page, sign_in, worker, tenant, owner, sim):
    session, chat = _chat_with_history(tenant, sim, count=1)
    quick_replies.create_reply(tenant, TEST_ACTOR, shortcut="hours", text="We are open 9-18, {{name}}.")
    sign_in(owner)
    _open(page, chat)
    page.locator("#composer textarea").fill("/hou")
    page.locator(".composer-quick li").first.click()
    expect(page.locator("#composer textarea")).to_have_value("We are open 9-18, Sim Contact.")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_thread_screenshots(page, sign_in, worker, tenant, owner, sim, scheme, size):
    session, chat = _chat_with_history(tenant, sim, count=12)
    stored_message(
        tenant,
        session,
        body="A document for you",
        media={"kind": "document", "filename": "offer.pdf", "mimetype": "application/pdf", "size": 48213},
    )
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.emulate_media(color_scheme=scheme)
    sign_in(owner)
    _open(page, chat)
    expect(page.locator("#thread-root").get_by_text("are you open today?")).to_be_in_viewport()
    page.screenshot(path=str(_path(f"inbox-thread-{scheme}-{size[0]}x{size[1]}")))


def _path(name: str):
    from tests.browser.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def test_on_a_phone_the_composer_is_on_screen_and_a_messages_menu_opens_whole(
    page, sign_in, worker, tenant, owner, sim
):
    session, chat = _chat_with_history(tenant, sim, count=2)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(owner)
    _open(page, chat)

    expect(page.locator("#composer textarea")).to_be_in_viewport(ratio=1)
    question = page.locator(".tmsg-in", has_text="are you open today?")
    question.locator("summary").click()
    menu = question.locator(".tmenu-list")
    expect(menu.get_by_role("button", name="Reply")).to_be_in_viewport(ratio=1)
    box = menu.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
