"""The send queue on PostgreSQL, Redis and the simulator: enqueue, lanes, gates, cancel, pause, clear."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Message, QueuedSend, utcnow
from portal.services import outreach
from portal.services.errors import Conflict, Invalid, NotFound
from portal.services.outreach import rules
from tests.builders import TEST_ACTOR, make_tenant

CHAT = "491709999999@c.us"


@pytest.fixture(autouse=True)
def _no_gates():
    """Gates registered by a test stay with that test."""
    gates, listeners = list(rules._gates), list(rules._listeners)
    yield
    rules._gates[:], rules._listeners[:] = gates, listeners


def _texts(sim, session) -> list[str]:
    return [m["body"] for m in sim.sent_messages(session.external_name)]


@pytest.mark.smoke
def test_a_queued_message_is_sent_once_with_its_row_linked(tenant, working, sim, dispatch):
    item = outreach.enqueue(tenant, working.id, "+49 170 9999999", body="hello", actor=TEST_ACTOR)

    report = dispatch(working.id)

    item = db.session.get(QueuedSend, item.id)
    assert (report.sent, item.state, item.attempts) == (1, "sent", 1)
    message = db.session.get(Message, item.message_id)
    assert (message.chat_id, message.body, message.idempotency_key) == (CHAT, "hello", f"queue-{item.id}")
    assert _texts(sim, working) == ["hello"]
    assert dispatch(working.id).sent == 0  # nothing left, nothing sent twice


@pytest.mark.smoke
def test_transactional_lane_goes_before_campaign_traffic(tenant, working, sim, dispatch):
    outreach.enqueue_many(
        tenant,
        [{"session_id": working.id, "chat_id": f"49170555123{n}", "body": f"campaign {n}"} for n in range(3)],
        actor=TEST_ACTOR,
    )
    outreach.enqueue(tenant, working.id, CHAT, body="receipt", actor=TEST_ACTOR)
    outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="UTC", gap_min=0, gap_max=0)

    dispatch(working.id)

    assert _texts(sim, working) == ["receipt", "campaign 0", "campaign 1", "campaign 2"]


def test_a_later_item_waits_for_its_time(tenant, working, sim, dispatch):
    outreach.enqueue(tenant, working.id, CHAT, body="later", not_before=utcnow() + timedelta(hours=1), actor=TEST_ACTOR)

    report = dispatch(working.id)

    assert (report.sent, report.held) == (0, True)
    assert _texts(sim, working) == []


def test_a_skip_gate_ends_the_item_unsent_and_listeners_hear_of_it(tenant, working, sim, dispatch):
    heard = []
    outreach.register_gate(lambda item, session: outreach.Skip("opted_out") if item.body == "no" else None)
    outreach.on_settled(lambda item: heard.append((item.body, item.state)))
    skipped = outreach.enqueue(tenant, working.id, CHAT, body="no", actor=TEST_ACTOR)
    outreach.enqueue(tenant, working.id, CHAT, body="yes", actor=TEST_ACTOR)

    dispatch(working.id)

    row = db.session.get(QueuedSend, skipped.id)
    assert (row.state, row.last_error, row.message_id) == ("skipped", "opted_out", None)
    assert _texts(sim, working) == ["yes"]
    assert sorted(heard) == [("no", "skipped"), ("yes", "sent")]


@pytest.mark.smoke
def test_a_hold_gate_keeps_the_item_queued_with_its_reason(tenant, working, sim, dispatch):
    until = utcnow() + timedelta(minutes=10)
    outreach.register_gate(
        lambda item, session: outreach.Hold(until, "new contact limit") if item.body == "a" else None
    )
    held = outreach.enqueue(tenant, working.id, CHAT, body="a", actor=TEST_ACTOR)
    outreach.enqueue(tenant, working.id, CHAT, body="b", actor=TEST_ACTOR)

    dispatch(working.id)

    row = db.session.get(QueuedSend, held.id)
    assert (row.state, row.hold_reason) == ("queued", "new contact limit")
    assert abs((row.not_before - until).total_seconds()) < 1
    assert _texts(sim, working) == ["b"]


def test_a_hold_without_time_lets_the_rest_go_this_pass(tenant, working, sim, dispatch):
    outreach.register_gate(lambda item, session: outreach.Hold(None, "campaign paused") if item.body == "a" else None)
    held = outreach.enqueue(tenant, working.id, CHAT, body="a", actor=TEST_ACTOR)
    outreach.enqueue(tenant, working.id, CHAT, body="b", actor=TEST_ACTOR)

    dispatch(working.id)

    assert db.session.get(QueuedSend, held.id).hold_reason == "campaign paused"
    assert _texts(sim, working) == ["b"]


@pytest.mark.smoke
def test_cancel_one_and_clear_campaign_traffic(tenant, working, sim, dispatch):
    one = outreach.enqueue(tenant, working.id, CHAT, body="one", actor=TEST_ACTOR)
    outreach.enqueue_many(
        tenant, [{"session_id": working.id, "chat_id": CHAT, "body": f"c{n}"} for n in range(4)], actor=TEST_ACTOR
    )
    keep = outreach.enqueue(tenant, working.id, CHAT, body="keep", actor=TEST_ACTOR)

    outreach.cancel(tenant, one.id, TEST_ACTOR)
    assert outreach.clear_campaign_traffic(tenant, working.id, TEST_ACTOR) == 4
    with pytest.raises(Conflict) as caught:
        outreach.cancel(tenant, one.id, TEST_ACTOR)
    dispatch(working.id)

    assert caught.value.code == "not_cancellable"
    assert _texts(sim, working) == ["keep"]
    assert db.session.get(QueuedSend, keep.id).state == "sent"
    actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant.id)))
    assert {"outreach.enqueue", "outreach.enqueue_many", "outreach.cancel", "outreach.clear_campaign"} <= actions


def test_a_paused_queue_sends_nothing_until_resumed(tenant, working, sim, dispatch):
    outreach.pause_session(tenant, working.id, TEST_ACTOR)
    outreach.enqueue(tenant, working.id, CHAT, body="waits", actor=TEST_ACTOR)

    assert dispatch(working.id).sent == 0
    outreach.resume_session(tenant, working.id, TEST_ACTOR)
    assert dispatch(working.id).sent == 1
    assert _texts(sim, working) == ["waits"]


def test_another_tenants_session_and_item_are_not_found(tenant, working):
    other = make_tenant()
    item = outreach.enqueue(tenant, working.id, CHAT, body="mine", actor=TEST_ACTOR)

    with pytest.raises(NotFound):
        outreach.enqueue(other, working.id, CHAT, body="theirs", actor=TEST_ACTOR)
    with pytest.raises(NotFound):
        outreach.enqueue_many(other, [{"session_id": working.id, "chat_id": CHAT, "body": "x"}], actor=TEST_ACTOR)
    with pytest.raises(NotFound):
        outreach.cancel(other, item.id, TEST_ACTOR)
    with pytest.raises(NotFound):
        outreach.clear_campaign_traffic(other, working.id, TEST_ACTOR)


def test_bad_input_is_refused_and_nothing_is_written(tenant, working):
    with pytest.raises(Invalid):
        outreach.enqueue(tenant, working.id, "not a number", body="x", actor=TEST_ACTOR)
    with pytest.raises(Invalid):
        outreach.enqueue(tenant, working.id, CHAT, actor=TEST_ACTOR)
    with pytest.raises(Invalid) as caught:
        outreach.enqueue_many(
            tenant,
            [{"session_id": working.id, "chat_id": CHAT, "body": "fine"}, {"session_id": working.id, "chat_id": CHAT}],
            actor=TEST_ACTOR,
        )

    assert caught.value.details["index"] == 1
    assert db.session.scalar(select(func.count()).select_from(QueuedSend)) == 0


def test_a_scheduled_message_to_a_new_contact_waits_out_a_timelock_and_one_to_a_known_chat_goes(
    tenant, working, sim, dispatch
):
    from datetime import timedelta

    from portal.models import QueuedSend, utcnow
    from portal.services import messages, number_health, outreach
    from portal.services.outreach import rules

    gates = list(rules._gates)
    outreach.register_gate(number_health.new_contact_gate)
    try:
        messages.send_message(tenant, working.id, TEST_ACTOR, to="+491705550001", text="we talked before")
        sim.set_timelock(working.external_name, True, seconds=3600)
        number_health.check_session(working.id)
        soon = utcnow() + timedelta(seconds=1)
        known = outreach.schedule_message(
            tenant, working.id, TEST_ACTOR, to="+491705550001", send_at=soon, text="hi again"
        )
        new = outreach.schedule_message(tenant, working.id, TEST_ACTOR, to="+491705550002", send_at=soon, text="hello")

        dispatch(working.id, run_for=6.0, nap_max=2.0)

        held = db.session.get(QueuedSend, new.id)
        assert db.session.get(QueuedSend, known.id).state == "sent"
        assert held.state == "queued" and held.hold_reason == "WhatsApp limits new contacts of this number"
        assert held.not_before is not None and held.not_before >= utcnow() + timedelta(minutes=55)
        assert [m["body"] for m in sim.sent_messages(working.external_name)] == ["we talked before", "hi again"]
    finally:
        rules._gates[:] = gates
