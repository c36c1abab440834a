"""A queued message over the tenant's quota is held (hold_reason quota_exceeded), not lost, and goes when the
quota has room again."""

from __future__ import annotations

from datetime import timedelta

from portal.extensions import db
from portal.models import QueuedSend, utcnow
from portal.services import outreach
from tests.builders import TEST_ACTOR

CHAT = "491701234567@c.us"


def _due(item_id: int) -> None:
    db.session.execute(
        QueuedSend.__table__.update().where(QueuedSend.id == item_id).values(not_before=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


def test_a_scheduled_message_over_quota_is_held_then_sent(tenant, working, sim, dispatch):
    tenant.max_messages_per_day = 0
    db.session.commit()
    item = outreach.schedule_message(
        tenant, working.id, TEST_ACTOR, to=CHAT, text="over quota", send_at=utcnow() + timedelta(seconds=1)
    )
    _due(item.id)
    dispatch(working.id, nap_max=0)
    row = db.session.get(QueuedSend, item.id)
    assert (row.state, row.hold_reason, row.last_error) == ("queued", "quota_exceeded", "quota_exceeded")
    assert row.not_before > utcnow()  # tried again when the day's count starts over
    assert sim.sent_messages(working.external_name) == []

    # the day's count is known now: the queue's gate holds the next one without trying to send it
    later = outreach.schedule_message(
        tenant, working.id, TEST_ACTOR, to=CHAT, text="also over", send_at=utcnow() + timedelta(seconds=1)
    )
    _due(later.id)
    dispatch(working.id, nap_max=0)
    held = db.session.get(QueuedSend, later.id)
    assert (held.state, held.hold_reason, held.attempts) == ("queued", "quota_exceeded", 0)

    tenant.max_messages_per_day = 5
    db.session.commit()
    _due(item.id)
    _due(later.id)
    dispatch(working.id)
    assert db.session.get(QueuedSend, item.id).state == "sent"
    assert db.session.get(QueuedSend, later.id).state == "sent"
