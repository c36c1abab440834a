"""The dispatcher of a session's send queue, and the sweep that re-drives what a lost job left behind.

One dispatcher runs per session at a time (a Redis lock with a token; without Redis the row claims below still
keep every item to one send). Each step, in one short transaction, picks the next item:

1. a paused queue sends nothing; a session that is not WORKING holds everything (a scheduled message that
   is due meanwhile is marked late and the tenant told: a "message.scheduled_late" event and the queue page);
2. the transactional lane goes first; campaign traffic waits out the tenant's quiet hours (in its time zone)
   and the gap since the session's last campaign message;
3. the registered gates may Hold or Skip the item;
4. the session's token bucket (services.pacing) gives the slot; campaign traffic never spends the burst;
5. the row is claimed (queued -> sending, an atomic UPDATE) and committed before WAHA is called.

The send itself is the ordinary send service under the idempotency key "queue-<item id>": a dispatcher that dies
mid-send leaves the row "sending"; the sweep puts it back once stale, and the repeat finds the first attempt's
message by its key (sent once, or sent again under the same WhatsApp id, which WAHA deduplicates).
Waits up to NAP_MAX are slept inside the job (woken early by a poke: a new item, a pause); longer ones end the
job with a timed wake-up at the moment the next item is due.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import func, or_, select, update

from portal.extensions import db, redis_store
from portal.models import QueuedSend, SendQueueSession, Tenant, WahaSession, rowcount, utcnow
from portal.services import pacing
from portal.services.outreach import lateness
from portal.services.outreach.queue import LOCK_KEY, wake
from portal.services.outreach.rules import Hold, Skip, ask_gates, settled
from portal.services.outreach.sending import send_item, typing_seconds
from portal.services.outreach.settings import outreach_settings
from portal.services.outreach.stream import stream_campaign
from portal.services.outreach.waiting import extend_lock as _extend
from portal.services.outreach.waiting import lock as _lock
from portal.services.outreach.waiting import nap as _nap
from portal.services.outreach.waiting import poked as _poked
from portal.services.outreach.waiting import release as _release

log = logging.getLogger(__name__)

NAP_MAX = 10.0  # seconds a dispatcher sleeps inside its job; longer waits end it with a timed wake-up
RUN_FOR = 50.0  # seconds one job dispatches before handing over to a fresh job (the queue stays fair)
NOT_WORKING_RETRY = timedelta(seconds=15)  # how often a held session's queue looks again
STALE_SENDING = timedelta(minutes=2)
# A campaign item is planned ahead of its slot (at least LEAD, or twice as long as planning and sending the last
# one took, at most LEAD_MAX) and the send then waits for the slot itself: planning (a few queries, the claim) on a busy
# machine does not add to the gap.
LEAD = timedelta(milliseconds=60)
LEAD_MAX = timedelta(milliseconds=800)  # a claim older than this belongs to a dispatcher that died
SWEEP_BATCH = 500


@dataclass
class Step:
    """What the dispatcher does next: send `item`, or wait until `wait_until` (None: nothing to do)."""

    item: QueuedSend | None = None
    wait_until: datetime | None = None
    typing_for: float = 0.0
    send_at: datetime | None = None  # the campaign slot the send waits for
    settled: list[QueuedSend] = field(default_factory=list)


def _due(now: datetime) -> Any:
    return or_(QueuedSend.not_before.is_(None), QueuedSend.not_before <= now)


def _next_due(session_id: str, now: datetime, lane: str, passed: set[int]) -> QueuedSend | None:
    stmt = (
        select(QueuedSend)
        .where(QueuedSend.session_id == session_id, QueuedSend.state == "queued", QueuedSend.lane == lane, _due(now))
        .order_by(func.coalesce(QueuedSend.not_before, QueuedSend.created_at), QueuedSend.id)
        .limit(1)
    )
    if passed:
        stmt = stmt.where(QueuedSend.id.not_in(passed))
    return db.session.scalar(stmt)


def _earliest_later(session_id: str, now: datetime) -> datetime | None:
    return db.session.scalar(
        select(func.min(QueuedSend.not_before)).where(
            QueuedSend.session_id == session_id, QueuedSend.state == "queued", QueuedSend.not_before > now
        )
    )


def _hold(item: QueuedSend, reason: str, until: datetime | None = None) -> None:
    """Keep the item queued, showing why (and not before `until` when given); caller commits."""
    item.hold_reason = reason[:200]
    if until is not None:
        item.not_before = until
    item.updated_at = utcnow()


def _soonest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None


def plan(session_id: str, passed: set[int], now: datetime | None = None, lead: timedelta = LEAD) -> Step:
    """Decide the next step of the session's queue; commits what it marked (holds, skips, the claim)."""
    now = now or utcnow()
    session = db.session.get(WahaSession, session_id)
    if session is None:
        return Step()
    state = db.session.get(SendQueueSession, session_id)
    if state is not None and state.paused:
        return Step()
    tenant = db.session.get(Tenant, session.tenant_id)
    if tenant is None:
        return Step()
    transactional = _next_due(session_id, now, "transactional", passed)
    campaign = None if transactional is not None else _next_due(session_id, now, "campaign", passed)
    later = _earliest_later(session_id, now)
    item = transactional or campaign
    if item is None:
        return Step(wait_until=later)
    if session.status != "WORKING":
        reason = f"session is {session.status}"
        late = lateness.mark_late(session, item, reason) if item.scheduled and not item.late else []
        for row in (transactional, campaign):
            if row is not None and row.hold_reason != reason:
                _hold(row, reason)
        db.session.commit()
        lateness.after_commit(late)
        return Step(wait_until=now + NOT_WORKING_RETRY)
    typing_for = 0.0
    send_at: datetime | None = None
    if item.lane == "campaign":
        settings = outreach_settings(session.tenant_id)
        quiet_end = settings.quiet_until(now)
        if quiet_end is not None:
            if item.hold_reason != "quiet hours":
                _hold(item, "quiet hours")
                db.session.commit()
            return Step(wait_until=_soonest(quiet_end, _transactional_later(session_id, now)))
        slot = state.next_campaign_at if state is not None else None
        typing_for = typing_seconds(item, state, settings) if item.typing else 0.0
        start_at = slot - timedelta(seconds=typing_for) - lead if slot is not None else None
        if start_at is not None and start_at > now:
            return Step(wait_until=_soonest(start_at, _transactional_later(session_id, now)))
        send_at = slot
    verdict = ask_gates(item, session)
    if isinstance(verdict, Skip):
        item.state, item.last_error, item.hold_reason, item.updated_at = "skipped", verdict.reason[:500], None, now
        db.session.commit()
        return Step(wait_until=now, settled=[item])
    if isinstance(verdict, Hold):
        _hold(item, verdict.reason, verdict.until)
        if verdict.until is None:
            passed.add(item.id)
        db.session.commit()
        return Step(wait_until=now)
    wait = pacing.try_acquire(session_id, tenant.send_rate_per_minute, burst=1 if item.lane == "campaign" else None)
    if wait > 0:
        if item.hold_reason != "pacing":
            _hold(item, "pacing")
            db.session.commit()
        return Step(wait_until=now + timedelta(seconds=wait))
    claimed = db.session.execute(
        update(QueuedSend)
        .where(QueuedSend.id == item.id, QueuedSend.state == "queued")
        .values(state="sending", attempts=QueuedSend.attempts + 1, hold_reason=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if rowcount(claimed) != 1:
        return Step(wait_until=now)
    db.session.refresh(item)
    return Step(item=item, typing_for=typing_for, send_at=send_at)


def _transactional_later(session_id: str, now: datetime) -> datetime | None:
    return db.session.scalar(
        select(func.min(QueuedSend.not_before)).where(
            QueuedSend.session_id == session_id,
            QueuedSend.state == "queued",
            QueuedSend.lane == "transactional",
            QueuedSend.not_before > now,
        )
    )


# ---------------------------------------------------------------------- the job's loop


@dataclass
class Report:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    held: bool = False


def run(session_id: str, *, run_for: float = RUN_FOR, nap_max: float = NAP_MAX) -> Report:
    """Dispatch the session's queue until nothing is due within `nap_max` seconds or `run_for` is spent."""
    report = Report()
    token = secrets.token_hex(8)
    if _lock(session_id, token) is False:
        return report  # another dispatcher runs; the waker poked it
    deadline = time.monotonic() + run_for
    passed: set[int] = set()
    lead = LEAD
    try:
        while True:
            began = time.monotonic()
            step = plan(session_id, passed, lead=lead)
            settled(step.settled)
            report.skipped += len(step.settled)
            if step.item is not None:
                waited = max(0.0, (step.send_at - utcnow()).total_seconds()) if step.send_at else 0.0
                outcome = send_item(step.item, step.typing_for, step.send_at)
                # plan the next one as far ahead as planning and sending took here (a busy machine, a slow WAHA)
                busy = time.monotonic() - began - waited - step.typing_for
                lead = min(LEAD_MAX, max(LEAD, timedelta(seconds=2 * busy)))
                report.sent += outcome == "sent"
                report.failed += outcome == "failed"
                if not _extend(session_id, token):
                    return report
                if outcome == "sent" and step.item.lane == "campaign":
                    _stream_after(step.item.id, session_id, deadline, token, report, nap_max)
                continue
            if step.wait_until is None:
                return report
            seconds = (step.wait_until - utcnow()).total_seconds()
            if seconds <= nap_max and time.monotonic() + seconds < deadline:
                _nap(session_id, seconds)
                if not _extend(session_id, token):
                    return report
                continue
            report.held = True
            if time.monotonic() >= deadline and seconds <= nap_max:
                wake(session_id)  # a fresh job carries on
            else:
                wake(session_id, step.wait_until)
            return report
    finally:
        _release(session_id, token)
        if _poked(session_id):
            wake(session_id)  # something arrived while this dispatcher was finishing: a fresh job looks at it


def _stream_after(item_id: int, session_id: str, deadline: float, token: str, report: Report, nap_max: float) -> None:
    """Go on with the campaign items after the one just sent (services.outreach.stream)."""
    row = db.session.execute(
        select(QueuedSend.tenant_id, QueuedSend.sent_at, SendQueueSession.next_campaign_at)
        .join(SendQueueSession, SendQueueSession.session_id == QueuedSend.session_id)
        .where(QueuedSend.id == item_id)
    ).first()
    if row is None or row.sent_at is None or row.next_campaign_at is None:
        return
    gap = (row.next_campaign_at - row.sent_at).total_seconds()
    stream_campaign(session_id, row.tenant_id, row.sent_at, gap, deadline, token, report, nap_max)


# ---------------------------------------------------------------------- the sweep


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Put back items left "sending" by a dispatcher that died, and wake every session with due items whose
    dispatcher is not running (its job was lost: a worker died, Redis restarted). Scheduled every few seconds."""
    now = now or utcnow()
    stale = db.session.execute(
        update(QueuedSend)
        .where(QueuedSend.state == "sending", QueuedSend.updated_at < now - STALE_SENDING)
        .values(state="queued", hold_reason="retrying after an interrupted send", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    due_sessions = list(
        db.session.scalars(
            select(QueuedSend.session_id)
            .outerjoin(SendQueueSession, SendQueueSession.session_id == QueuedSend.session_id)
            .where(
                QueuedSend.state == "queued",
                _due(now),
                or_(SendQueueSession.paused.is_(None), SendQueueSession.paused.is_(False)),
            )
            .group_by(QueuedSend.session_id)
            .limit(SWEEP_BATCH)
        )
    )
    woken = 0
    for session_id in due_sessions:
        try:
            if redis_store.client.exists(LOCK_KEY + session_id):
                continue
        except redis.RedisError:
            return {"requeued": rowcount(stale), "woken": woken}
        wake(session_id)
        woken += 1
    return {"requeued": rowcount(stale), "woken": woken}
