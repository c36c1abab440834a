"""Deletes cascade on both databases: a deleted session takes its messages and chats with it, a deleted endpoint
its deliveries (SQLite enforces foreign keys only when each connection turns them on)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Chat, ChatNote, Contact, Message, WebhookDelivery
from portal.services import forwarding, inbox, sessions
from tests.builders import TEST_ACTOR, stored_message

pytestmark = pytest.mark.smoke


def _count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_deleting_a_session_deletes_its_messages(tenant, sim):
    session = sessions.create_session(tenant, TEST_ACTOR, name="Sales")
    stored_message(tenant, session, body="one")
    stored_message(tenant, session, direction="in", body="two")
    assert _count(Message) == 2

    sessions.delete_session(tenant, session.id, TEST_ACTOR)
    db.session.expire_all()

    assert _count(Message) == 0


def test_deleting_a_session_deletes_its_chats_and_their_notes_but_keeps_contacts(tenant, sim):
    session = sessions.create_session(tenant, TEST_ACTOR, name="Sales")
    message = stored_message(tenant, session, direction="in", body="hi")
    db.session.add(Contact(tenant_id=tenant.id, chat_id=message.chat_id, tags=[]))
    chat = Chat(tenant_id=tenant.id, session_id=session.id, chat_id=message.chat_id, last_message_id=message.id)
    db.session.add(chat)
    db.session.commit()
    inbox.add_note(tenant, session.id, message.chat_id, TEST_ACTOR, "called back")

    sessions.delete_session(tenant, session.id, TEST_ACTOR)
    db.session.expire_all()

    assert (_count(Chat), _count(ChatNote), _count(Contact)) == (0, 0, 1)


def test_deleting_an_endpoint_deletes_its_deliveries(tenant):
    endpoint, _secret = forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/hook")
    db.session.add(
        WebhookDelivery(
            tenant_id=tenant.id,
            endpoint_id=endpoint.id,
            url=endpoint.url,
            msg_id="msg_1",
            event_type="message",
            payload={},
            status="failed",
        )
    )
    db.session.commit()
    assert _count(WebhookDelivery) == 1

    forwarding.delete_endpoint(tenant, endpoint.id, TEST_ACTOR)
    db.session.expire_all()

    assert _count(WebhookDelivery) == 0
