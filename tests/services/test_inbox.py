"""Chats and contacts kept up to date by event processing and sends, and the inbox services on top of them:
events go through the real receiver and processing (PostgreSQL, Redis), sends through wahasim."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Chat, Contact, Message
from portal.services import contacts, events, inbox, messages, quick_replies
from portal.services.errors import NotFound, Upstream
from tests.builders import TEST_ACTOR, ack_payload, envelope, inbound_payload, make_tenant, member, new_session
from tests.builders import post_events as post
from tests.helpers import quiet_waha_webhooks

PERSON = "491709999999"
CHAT = f"{PERSON}@c.us"


@pytest.fixture(autouse=True)
def _quiet(app: Any) -> Any:
    with quiet_waha_webhooks(app):
        yield


@pytest.fixture
def session(tenant: Any) -> Any:
    return new_session(tenant, "Support")


@pytest.fixture
def deliver(client: Any) -> Any:
    """Post events (one batch) for a session and process them."""

    def run(session: Any, *bodies: dict[str, Any]) -> None:
        assert post(client, session, list(bodies)).status_code == 200
        events.drain()
        db.session.expire_all()

    return run


def message(session: Any, text: str = "hello", *, sender: str = PERSON, name: str | None = None, **extra: Any) -> Any:
    payload = inbound_payload(text, sender=sender)
    if name:
        payload["_data"] = {"Info": {"PushName": name}}  # GOWS
    payload.update(extra)
    return envelope(session, "message", payload)


def from_phone(session: Any, text: str, *, to: str = PERSON, wa_id: str = "PHONE0001") -> dict[str, Any]:
    """A message the account's owner typed on the phone (message.any, fromMe)."""
    chat = f"{to}@c.us"
    payload = {**inbound_payload(text, sender=to), "id": f"true_{chat}_{wa_id}", "fromMe": True, "to": chat}
    payload["from"] = "491701234567@c.us"
    payload["ack"], payload["ackName"] = 1, "SERVER"
    return envelope(session, "message.any", payload)


def chat_row(chat_id: str = CHAT) -> Chat:
    return db.session.scalar(select(Chat).where(Chat.chat_id == chat_id))


# ---- upkeep by event processing -------------------------------------------------------------------------------


@pytest.mark.smoke
def test_inbound_message_makes_chat_and_contact(session, deliver):
    deliver(session, message(session, "Hi there", name="Ada"))

    chat = chat_row()
    last = db.session.scalar(select(Message))
    assert (chat.tenant_id, chat.session_id, chat.name, chat.unread_count) == (session.tenant_id, session.id, "Ada", 1)
    assert (chat.last_message_id, chat.last_preview, chat.last_kind, chat.last_from_me) == (
        last.id,
        "Hi there",
        "text",
        False,
    )
    contact = db.session.scalar(select(Contact))
    assert (contact.chat_id, contact.phone, contact.push_name, contact.wa_exists) == (CHAT, PERSON, "Ada", True)
    assert contact.first_message_at == contact.last_message_at is not None


@pytest.mark.parametrize(
    "data",
    [{"notifyName": "Ada"}, {"pushName": "Ada"}, {"Info": {"PushName": "Ada"}}],
    ids=["webjs", "noweb", "gows"],
)
def test_push_name_is_read_where_each_engine_puts_it(session, deliver, data):
    body = message(session)
    body["payload"]["_data"] = data

    deliver(session, body)

    assert chat_row().name == "Ada" and contacts.name_of(db.session.scalar(select(Contact))) == "Ada"


def test_one_batch_of_many_events_writes_one_row_per_chat_with_the_newest_last(session, deliver):
    bodies = [message(session, f"m{n}") for n in range(5)]
    for n, body in enumerate(bodies):
        body["timestamp"] = int(time.time() * 1000) - 10_000 + n
    bodies.append(message(session, "other", sender="491701111111"))

    deliver(session, *bodies)

    assert db.session.scalar(select(sa.func.count()).select_from(Chat)) == 2
    chat = chat_row()
    assert (chat.unread_count, chat.last_preview) == (5, "m4")


def test_message_and_message_any_of_one_message_count_once(session, deliver):
    body = message(session)
    again = envelope(session, "message.any", body["payload"])

    deliver(session, body, again)
    deliver(session, envelope(session, "message", body["payload"]))

    assert chat_row().unread_count == 1


def test_message_sent_from_the_phone_shows_as_last_without_unread(session, deliver):
    deliver(session, message(session, "question"))
    deliver(session, from_phone(session, "answer from the phone"))

    chat = chat_row()
    assert (chat.last_preview, chat.last_from_me, chat.last_status, chat.unread_count) == (
        "answer from the phone",
        True,
        "SERVER",
        1,
    )


def test_ack_of_the_last_message_moves_the_tick(session, deliver):
    deliver(session, from_phone(session, "hi", wa_id="TICK0001"))

    deliver(session, envelope(session, "message.ack", ack_payload(f"true_{CHAT}_TICK0001", 3)))

    assert chat_row().last_status == "READ"


def test_ack_of_an_older_message_leaves_the_tick_alone(session, deliver):
    deliver(session, from_phone(session, "first", wa_id="OLD00001"))
    deliver(session, message(session, "newer"))

    deliver(session, envelope(session, "message.ack", ack_payload(f"true_{CHAT}_OLD00001", 3)))

    chat = chat_row()
    assert (chat.last_preview, chat.last_status) == ("newer", "DEVICE")


def test_edit_and_revoke_of_the_last_message_change_the_preview(session, deliver):
    body = message(session, "typo")
    deliver(session, body)
    edit = {"id": "edit-1", "editedMessageId": body["payload"]["id"], "body": "fixed", "fromMe": False}

    deliver(session, envelope(session, "message.edited", edit))
    edited = chat_row().last_preview
    deliver(session, envelope(session, "message.revoked", {"revokedMessageId": body["payload"]["id"]}))

    chat = chat_row()
    assert edited == "fixed" and (chat.last_kind, chat.last_preview) == ("revoked", None)


def test_new_inbound_message_reopens_a_resolved_chat(session, deliver, tenant):
    deliver(session, message(session))
    inbox.update_chat(tenant, session.id, CHAT, TEST_ACTOR, status="resolved")

    deliver(session, message(session, "still there?"))

    chat = chat_row()
    assert (chat.status, chat.resolved_at, chat.unread_count) == ("open", None, 2)


def test_status_broadcasts_make_no_chat(session, deliver):
    body = message(session)
    body["payload"]["id"] = "false_status@broadcast_ABC"
    body["payload"]["from"] = "status@broadcast"

    deliver(session, body)

    assert db.session.scalar(select(Message)) is not None and db.session.scalar(select(Chat)) is None


def test_group_message_makes_a_chat_but_no_contact(session, deliver):
    body = message(session)
    group = "120363025246125486@g.us"
    body["payload"].update(id=f"false_{group}_GRP1_{PERSON}@c.us", **{"from": group, "participant": CHAT})

    deliver(session, body)

    assert chat_row(group).unread_count == 1 and db.session.scalar(select(Contact)) is None


def test_an_event_that_fails_leaves_no_trace_in_the_chats(session, deliver):
    # a WhatsApp timestamp beyond the column's range fails the batch; applied event by event, only it fails
    good, bad = message(session, "good"), message(session, "bad", sender="491701111111", timestamp=10**11)

    deliver(session, good, bad)

    assert [c.chat_id for c in db.session.scalars(select(Chat))] == [CHAT]
    assert [c.chat_id for c in db.session.scalars(select(Contact))] == [CHAT] and chat_row().unread_count == 1
    assert list(db.session.scalars(select(Message.body))) == ["good"]


# ---- sends ----------------------------------------------------------------------------------------------------


@pytest.fixture
def working(tenant: Any, sim: Any) -> Any:
    from tests.builders import wait_for_status

    created = new_session(tenant, "Sales")
    sim.scan(created.external_name)
    return wait_for_status(tenant, created, "WORKING")


@pytest.mark.smoke
def test_send_shows_in_its_chat(tenant, working):
    sent = messages.send_message(tenant, working.id, TEST_ACTOR, to="+49 170 1234567", text="Hello")

    chat = chat_row("491701234567@c.us")
    assert (chat.last_message_id, chat.last_preview, chat.last_from_me, chat.unread_count) == (
        sent.id,
        "Hello",
        True,
        0,
    )


def test_send_to_a_number_not_on_whatsapp_is_refused_and_remembered(tenant, working, sim, waha_requests):
    with pytest.raises(contacts.NotOnWhatsApp) as caught:
        messages.send_message(tenant, working.id, TEST_ACTOR, to="+49 170 0000000", text="Hi")
    with pytest.raises(contacts.NotOnWhatsApp):
        messages.send_message(tenant, working.id, TEST_ACTOR, to="+49 170 0000000", text="Hi")

    assert caught.value.status == 422 and caught.value.code == "not_on_whatsapp"
    assert waha_requests.count("GET", "/api/contacts/check-exists") == 1
    assert sim.sent_messages(working.external_name) == [] and db.session.scalar(select(Message)) is None
    assert db.session.scalar(select(Contact.wa_exists).where(Contact.chat_id == "491700000000@c.us")) is False


def test_only_the_first_send_to_a_number_asks_whatsapp(tenant, working, waha_requests):
    for text in ("one", "two", "three"):
        messages.send_message(tenant, working.id, TEST_ACTOR, to="+49 170 1234567", text=text)

    assert waha_requests.count("GET", "/api/contacts/check-exists") == 1
    assert waha_requests.count("POST", "/api/sendText") == 3


def test_send_to_a_group_asks_nothing(tenant, working, waha_requests):
    messages.send_message(tenant, working.id, TEST_ACTOR, to="120363025246125486@g.us", text="Hi all")

    assert waha_requests.count("GET", "/api/contacts/check-exists") == 0


def test_send_when_waha_is_down_fails_unsent_after_one_try(tenant, working, sim, waha_requests):
    sim.fail_next(10, 503)
    with pytest.raises(Upstream) as caught:
        messages.send_message(tenant, working.id, TEST_ACTOR, to="+49 170 1234567", text="Hi")
    sim.fail_next(0)

    assert caught.value.details["outcome"] == "unsent"
    assert waha_requests.count("POST", "/api/sendText") == 0
    row = db.session.scalar(select(Message))
    assert row.status == "ERROR" and chat_row("491701234567@c.us").last_status == "ERROR"


# ---- list, assign, read, badge, notes -------------------------------------------------------------------------


def test_views_filter_as_the_inbox_tabs_do(session, deliver, tenant):
    me, other = member(tenant, "operator"), member(tenant, "operator", email="other@example.com")
    for n in range(4):
        deliver(session, message(session, sender=f"49170111111{n}"))
    chats = [f"49170111111{n}@c.us" for n in range(4)]
    inbox.update_chat(tenant, session.id, chats[0], TEST_ACTOR, assignee_id=me.id)
    inbox.update_chat(tenant, session.id, chats[1], TEST_ACTOR, assignee_id=other.id)
    inbox.update_chat(tenant, session.id, chats[2], TEST_ACTOR, status="resolved")
    inbox.mark_read(tenant, session.id, chats[3], TEST_ACTOR)

    def view(name: str) -> list[str]:
        page = inbox.list_chats(tenant, inbox.filters_for_view(name, me.id))
        return sorted(item.chat.chat_id for item in page.items)

    assert view("all") == sorted([chats[0], chats[1], chats[3]])
    assert view("unread") == sorted(chats[:2])
    assert (view("mine"), view("unassigned"), view("resolved")) == ([chats[0]], [chats[3]], [chats[2]])
    assert inbox.badge_count(tenant, me.id) == 1 and inbox.badge_count(tenant, None) == 0


def test_chat_changes_are_audited_against_the_chat_with_its_session_and_chat_id(session, deliver, tenant):
    operator = member(tenant, "operator")
    deliver(session, message(session))
    inbox.update_chat(tenant, session.id, CHAT, TEST_ACTOR, assignee_id=operator.id, status="resolved")
    inbox.update_chat(tenant, session.id, CHAT, TEST_ACTOR, assignee_id=None, status="open")
    deliver(session, message(session, "one more"))
    inbox.mark_read(tenant, session.id, CHAT, TEST_ACTOR)
    note = inbox.add_note(tenant, session.id, CHAT, TEST_ACTOR, "Called back")

    chat = chat_row()
    where = {"session_id": session.id, "chat_id": CHAT}
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.target_type == "chat").order_by(AuditEvent.id))
    assert [(e.action, e.tenant_id, e.target_id, e.details) for e in events] == [
        ("chat.assign", tenant.id, str(chat.id), {**where, "from": None, "to": operator.id}),
        ("chat.resolve", tenant.id, str(chat.id), where),
        ("chat.unassign", tenant.id, str(chat.id), {**where, "from": operator.id, "to": None}),
        ("chat.reopen", tenant.id, str(chat.id), where),
        ("chat.read", tenant.id, str(chat.id), {**where, "unread": 2}),
        ("chat.note", tenant.id, str(chat.id), {**where, "note_id": note.id}),
    ]


def test_removed_member_loses_their_chats(session, deliver, tenant, owner):
    from portal.services import team

    operator = member(tenant, "operator")
    deliver(session, message(session))
    inbox.update_chat(tenant, session.id, CHAT, TEST_ACTOR, assignee_id=operator.id)

    team.remove_member(tenant, operator.id, TEST_ACTOR, actor_role="owner")

    assert chat_row().assignee_id is None


def test_other_tenants_chat_is_not_found(session, deliver):
    deliver(session, message(session))
    stranger = make_tenant()

    for call in (
        lambda: inbox.get_chat(stranger, session.id, CHAT),
        lambda: inbox.mark_read(stranger, session.id, CHAT, TEST_ACTOR),
        lambda: inbox.update_chat(stranger, session.id, CHAT, TEST_ACTOR, status="resolved"),
        lambda: inbox.add_note(stranger, session.id, CHAT, TEST_ACTOR, "hi"),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.code == "session_not_found"
    assert inbox.list_chats(stranger).items == [] and chat_row().status == "open"


def test_note_author_is_the_member_who_wrote_it(session, deliver, tenant, owner):
    from portal.services.audit import Actor

    deliver(session, message(session))

    note = inbox.add_note(tenant, session.id, CHAT, Actor(type="user", id=str(owner.id), label=owner.email), "Hi")

    assert (note.author_id, note.author_label, note.body) == (owner.id, owner.email, "Hi")
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "chat.note"))
    assert event.details["note_id"] == note.id and "Hi" not in str(event.details)


# ---- names, quick replies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("saved", "pushed", "chat_id", "expected"),
    [
        ("Ada (customer)", "Ada", CHAT, "Ada (customer)"),
        (None, "Ada", CHAT, "Ada"),
        ("  ", None, CHAT, "+49 170 9999999"),
        (None, None, "120363025246125486@g.us", "120363025246125486"),
    ],
)
def test_display_name_rule(saved, pushed, chat_id, expected):
    assert contacts.display_name(saved, pushed, chat_id) == expected


def test_quick_reply_fills_in_name_and_phone():
    text = "Hi {{name}}, we call you on {{ phone }}. {{other}}"

    assert quick_replies.render(text, name="Ada", chat_id=CHAT) == "Hi Ada, we call you on +49 170 9999999. {{other}}"
