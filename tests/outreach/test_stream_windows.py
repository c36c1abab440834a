"""The campaign stream claims items a window at a time and takes their pacing slots in one call: nothing
claimed is left behind when it hands back, the gates are still asked just before each send, and the pacing
slots are the token bucket's own."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Message, QueuedSend
from portal.services import outreach, pacing
from portal.services.outreach import rules
from portal.services.outreach.stream import _window
from tests.builders import TEST_ACTOR

CHAT = "491709999999@c.us"


@pytest.fixture(autouse=True)
def _own_gates():
    gates, listeners = list(rules._gates), list(rules._listeners)
    yield
    rules._gates[:], rules._listeners[:] = gates, listeners


def _campaign_items(tenant: Any, session: Any, n: int) -> list[int]:
    outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="UTC", gap_min=0, gap_max=0)
    outreach.enqueue_many(
        tenant,
        [{"session_id": session.id, "chat_id": CHAT, "body": f"m{i}", "lane": "campaign"} for i in range(n)],
        actor=TEST_ACTOR,
    )
    return list(db.session.scalars(select(QueuedSend.id).order_by(QueuedSend.id)))


def test_a_pause_mid_stream_leaves_every_unsent_item_queued_as_it_was(tenant, working, sim, dispatch):
    ids = _campaign_items(tenant, working, 120)
    asked: list[int] = []

    def pause_after_ten(item: Any, session: Any) -> None:
        asked.append(item.id)
        if len(asked) == 10:
            outreach.pause_session(tenant, working.id, TEST_ACTOR)  # pokes the running dispatcher

    outreach.register_gate(pause_after_ten)

    dispatch(working.id, nap_max=0.5)

    rows = db.session.execute(select(QueuedSend.id, QueuedSend.state, QueuedSend.attempts)).all()
    sent = [r for r in rows if r.state == "sent"]
    waiting = [r for r in rows if r.state != "sent"]
    assert 10 <= len(sent) < len(ids)
    assert {r.state for r in waiting} == {"queued"}
    assert {r.attempts for r in waiting} == {0}
    assert {r.attempts for r in sent} == {1}
    bodies = [m["body"] for m in sim.sent_messages(working.external_name)]
    assert len(bodies) == len(set(bodies)) == len(sent)

    outreach.resume_session(tenant, working.id, TEST_ACTOR)
    dispatch(working.id, nap_max=0.5)
    assert db.session.scalar(select(QueuedSend.state).where(QueuedSend.state != "sent").limit(1)) is None
    assert sorted(m["body"] for m in sim.sent_messages(working.external_name)) == sorted(f"m{i}" for i in range(120))


@pytest.mark.smoke
def test_gates_are_asked_just_before_each_claimed_item_goes(tenant, working, sim, dispatch):
    ids = _campaign_items(tenant, working, 40)
    held, skipped = set(ids[5:15:2]), set(ids[6:16:2])

    def gate(item: Any, session: Any) -> Any:
        if item.id in held:
            return outreach.Hold(None, "campaign paused")
        if item.id in skipped:
            return outreach.Skip("campaign_cancelled")
        return None

    outreach.register_gate(gate)

    dispatch(working.id, nap_max=0.5)

    rows = {r.id: r for r in db.session.execute(select(QueuedSend.id, QueuedSend.state, QueuedSend.attempts))}
    assert {rows[i].state for i in held} == {"queued"} and {rows[i].attempts for i in held} == {0}
    assert {rows[i].state for i in skipped} == {"skipped"} and {rows[i].attempts for i in skipped} == {0}
    others = set(ids) - held - skipped
    assert {rows[i].state for i in others} == {"sent"}
    assert db.session.scalar(select(Message.id).where(Message.idempotency_key == f"queue-{min(held)}")) is None
    assert len(sim.sent_messages(working.external_name)) == len(others)


def test_reserved_slots_are_the_token_buckets_own(tenant, working):
    rate = 60  # one a second
    granted, offset = pacing.reserve(working.id, rate, 3, burst=1)
    assert granted == 3 and -0.5 < offset <= 0
    # the three slots are taken: the next one opens three seconds on
    assert 1.9 < pacing.try_acquire(working.id, rate, burst=1) <= 3.0
    refused, wait = pacing.reserve(working.id, rate, 2, burst=1)
    assert refused == 0 and 1.9 < wait <= 3.0


@pytest.mark.parametrize(
    ("rate", "gap_max", "busy", "size"),
    [
        (6_000_000, 0.0, 0.003, 20),  # fast and no gap: the cap
        (6_000, 0.0, 0.003, 20),  # 10 ms a message
        (600, 0.0, 0.003, 2),  # 100 ms a message: what goes within the quarter second
        (60, 0.0, 0.003, 1),  # one a second
        (6_000_000, 3.0, 0.003, 1),  # a gap: one at a time, as before
        (6_000_000, 0.0, 0.1, 2),  # slow sends
    ],
)
def test_the_window_holds_what_goes_within_a_quarter_second(rate, gap_max, busy, size):
    assert _window(rate, gap_max, busy) == size


def test_a_stream_keeps_the_pace_between_its_own_messages(tenant, working, sim, dispatch, arrivals):
    tenant.send_rate_per_minute = 600  # 0.1 s apart
    db.session.commit()
    _campaign_items(tenant, working, 8)
    started = time.monotonic()

    dispatch(working.id, nap_max=1.0)

    sends = arrivals.times("/api/sendText")
    assert len(sends) == 8
    gaps = [b - a for a, b in zip(sends, sends[1:], strict=False)]
    # The pace holds over the stream (7 gaps of 0.1 s); one arrival may land a few ms early or late at the
    # simulator, which moves two neighbouring gaps but not the span, and no two messages go out as a burst.
    assert sends[-1] - sends[0] >= 0.63, gaps
    assert min(gaps) >= 0.06, gaps
    assert time.monotonic() - started >= 0.6
