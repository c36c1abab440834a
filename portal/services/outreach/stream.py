"""Campaign traffic in a stream: once the dispatcher's full plan (`dispatch.plan`: pause, session status, lanes,
quiet hours, late scheduled messages) has sent a campaign item, the following due campaign items of the session
are read in batches and sent one after another with only what changes per item: a poke (a transactional item
arrived, the queue was paused or cleared: back to the full plan), quiet hours, the gap, the gates, the token
bucket, the claim and the send. The settings and the tenant's pace are read once per stream; the row's fields
once per batch; "sent" outcomes and the next slot are written together every few items (a dispatcher that dies
first leaves those rows "sending": the sweep's retry finds each message by its key). A session that stops
working shows up as the send's refusal (the item goes back to the queue and the full plan holds the rest).

Items are claimed a window at a time: as many as the pace, the gap and the time a send takes let go within
WINDOW seconds (at most CLAIM_MAX; one when the gap or the pace is longer than the window), in one UPDATE that
is committed before any of them is sent, with the token bucket's slots for all of them taken in one Redis call
(`pacing.reserve`). Each message still waits for its own slot, keeps the pace after the stream's previous send
and its random gap, and the gates are asked for each one just before it is sent (a paused or cancelled
campaign stops the next item, as before). Claimed items that were not sent when the stream hands back are put
back at once; a dispatcher that dies leaves them "sending" and the sweep puts them back (never sent, so their
key finds no message). An item inside the window cannot be cancelled by itself (409, as one being sent).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update

from portal.extensions import db
from portal.models import QueuedSend, Tenant, WahaSession, utcnow
from portal.services import pacing
from portal.services.outreach.rules import Hold, Skip, ask_gates, has_gates, settled
from portal.services.outreach.sending import (
    TYPING_MAX,
    TYPING_MIN,
    TYPING_PER_CHARACTER,
    TYPING_SHARE,
    Work,
    record_sent,
    send_work,
)
from portal.services.outreach.settings import outreach_settings
from portal.services.outreach.waiting import extend_lock, nap, poked

BATCH = 200
LOOK_EVERY = 0.25  # seconds between two looks for a poke (a transactional item waits at most this much longer)
WINDOW = LOOK_EVERY  # seconds of traffic claimed (and paced) at once
CLAIM_MAX = 20
# Claimed items not sent within this long (WAHA became slow mid-window) go back to the full plan, far inside the
# sweep's STALE_SENDING, so the sweep never puts back an item this stream still holds.
CLAIM_HOLD_MAX = 30.0
FLUSH_COUNT, FLUSH_EVERY = 25, 1.0  # "sent" outcomes are written together: this many, or after this long
EXTEND_EVERY = 5.0  # seconds between two extensions of the session's lock (it lasts waiting.LOCK_MS)


def _batch(session_id: str, now: datetime) -> list[Work]:
    rows = db.session.scalars(
        select(QueuedSend)
        .where(
            QueuedSend.session_id == session_id,
            QueuedSend.state == "queued",
            QueuedSend.lane == "campaign",
            or_(QueuedSend.not_before.is_(None), QueuedSend.not_before <= now),
        )
        .order_by(func.coalesce(QueuedSend.not_before, QueuedSend.created_at), QueuedSend.id)
        .limit(BATCH)
    ).all()
    works = [Work.of(row) for row in rows]
    for row in rows:
        db.session.expunge(row)  # every commit would expire them all again: the stream needs only their fields
    return works


def _typing_for(work: Work, gap: float) -> float:
    if not work.typing:
        return 0.0
    wanted = min(TYPING_MAX, max(TYPING_MIN, len(work.body or "") * TYPING_PER_CHARACTER))
    return max(0.0, min(wanted, gap * TYPING_SHARE))


def _session_snapshot(session_id: str) -> WahaSession | None:
    """The session as it is now, detached: the gates read its columns for a whole batch without a reload at
    every commit (a batch lasts seconds; a limit that starts meanwhile also refuses the send itself)."""
    session = db.session.get(WahaSession, session_id)
    if session is not None:
        db.session.expunge(session)
    return session


def _gate(work: Work, session: WahaSession | None, claimed: bool = False) -> bool:
    """Ask the gates about the item (its fields as read for the batch, no reload); False when one held or
    skipped it (recorded and committed; a claimed item goes back to the queue when held)."""
    verdict = ask_gates(work, session)  # gates read the item's fields, which Work carries
    if verdict is None:
        return True
    values: dict[str, Any]
    if isinstance(verdict, Skip):
        values = {"state": "skipped", "last_error": verdict.reason[:500], "hold_reason": None}
        if claimed:
            values["attempts"] = work.attempts  # never tried
    else:
        values = {"hold_reason": verdict.reason[:200]}
        if isinstance(verdict, Hold) and verdict.until is not None:
            values["not_before"] = verdict.until
        if claimed:
            values.update(state="queued", attempts=work.attempts)
    db.session.execute(
        update(QueuedSend)
        .where(QueuedSend.id == work.id, QueuedSend.state == ("sending" if claimed else "queued"))
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if isinstance(verdict, Skip):
        item = db.session.get(QueuedSend, work.id)
        if item is not None:
            settled([item])
    return False


# Built once, run on the session's connection: the ORM's bulk-update path costs more CPU than the statement.
_CLAIM = (
    update(QueuedSend)
    .where(QueuedSend.id.in_(bindparam("ids", expanding=True)), QueuedSend.state == "queued")
    .values(state="sending", attempts=QueuedSend.attempts + 1, hold_reason=None, updated_at=bindparam("now"))
    .returning(QueuedSend.id)
)
_GIVE_BACK = (
    update(QueuedSend)
    .where(QueuedSend.id.in_(bindparam("ids", expanding=True)), QueuedSend.state == "sending")
    .values(state="queued", attempts=QueuedSend.attempts - 1, updated_at=bindparam("now"))
)


def _claim(works: list[Work]) -> list[Work]:
    """Claim the items in one statement and commit (before any is sent); returns those claimed here (another
    dispatcher's, a cancelled one are not)."""
    result = db.session.connection().execute(_CLAIM, {"ids": [w.id for w in works], "now": utcnow()})
    claimed = set(result.scalars())
    db.session.commit()
    return [w for w in works if w.id in claimed]


def _give_back(works: Any) -> None:
    """Put claimed items that were not handed to the send back in the queue, as they were."""
    ids = [w.id for w in works]
    if ids:
        db.session.rollback()
        db.session.connection().execute(_GIVE_BACK, {"ids": ids, "now": utcnow()})
        db.session.commit()


def _window(rate: int, gap_max: float, busy: float) -> int:
    """How many items go within WINDOW seconds at this pace, gap and time per send (1 to CLAIM_MAX)."""
    interval = 60.0 / rate if rate > 0 else 60.0
    return max(1, min(CLAIM_MAX, int(WINDOW / max(interval, gap_max, busy, 1e-6))))


def stream_campaign(
    session_id: str,
    tenant_id: int,
    last_sent: datetime,
    gap: float,
    deadline: float,
    token: str,
    report: Any,
    nap_max: float,
) -> None:
    """Send the session's due campaign items after the one sent at `last_sent` (whose gap is `gap` seconds),
    until a poke, quiet hours, a wait longer than the nap, the deadline or a refusal hands back to the full plan.
    Counts into `report` (dispatch.Report)."""
    from portal.services.outreach.dispatch import LEAD, LEAD_MAX

    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        return
    settings = outreach_settings(tenant_id)
    rate = tenant.send_rate_per_minute
    interval = 60.0 / rate if rate > 0 else 60.0
    slot = last_sent + timedelta(seconds=gap)
    lead = LEAD.total_seconds()
    busy = lead
    gates = has_gates()
    extended = looked = flushed = time.monotonic()
    pending: list[dict[str, Any]] = []  # "sent" outcomes not written yet
    last: tuple[Work, tuple[datetime, float]] | None = None
    ready: deque[Work] = deque()  # claimed, not handed to the send yet
    cells: deque[float] = deque()  # when each pacing slot taken for them opens (time.monotonic)
    last_call: datetime | None = None  # this stream's previous call to WAHA
    claimed_at = 0.0  # when the items in `ready` were claimed (time.monotonic)

    def flush() -> None:
        nonlocal flushed, last
        if pending or last is not None:
            record_sent(pending, *(last or (None, None)))
        flushed, last = time.monotonic(), None

    def take(todo: deque[Work]) -> bool:
        """Claim the next window of items and take their pacing slots; False when pacing says stop."""
        nonlocal claimed_at
        size = min(len(todo), _window(rate, settings.gap_max, busy))
        granted, offset = pacing.reserve(session_id, rate, size, burst=1)
        if granted == 0:
            flush()
            if offset > nap_max or nap(session_id, offset):
                return False
            granted, offset = pacing.reserve(session_id, rate, size, burst=1)
            if granted == 0:
                return False
        now = time.monotonic()
        cells.clear()  # slots left over (a gate held an item, another dispatcher claimed one) go unused
        cells.extend(now + offset + k * interval for k in range(granted))
        ready.extend(_claim([todo.popleft() for _ in range(size)]))
        claimed_at = time.monotonic()
        return True

    try:
        while time.monotonic() < deadline:
            works = _batch(session_id, utcnow())
            if not works:
                return
            session = _session_snapshot(session_id) if gates else None
            todo = deque(works)
            while todo or ready:
                began = time.monotonic()
                if began - looked >= LOOK_EVERY:
                    looked = began
                    if poked(session_id):
                        return
                if began >= deadline or (ready and began - claimed_at > CLAIM_HOLD_MAX):
                    return
                now = utcnow()
                if settings.quiet_until(now) is not None:
                    return
                typing_for = _typing_for(ready[0] if ready else todo[0], gap)
                start_in = (slot - now).total_seconds() - typing_for - lead
                if start_in > 0:
                    flush()
                    if start_in > nap_max or nap(session_id, start_in):
                        return
                if not ready:
                    if not take(todo):
                        return
                    if not ready:
                        continue  # claimed elsewhere, or cancelled meanwhile
                work = ready.popleft()
                typing_for = _typing_for(work, gap)
                if gates and not _gate(work, session, claimed=True):
                    continue
                cell = cells.popleft() if cells else time.monotonic()
                go = max(slot, utcnow() + timedelta(seconds=cell - time.monotonic()))
                if last_call is not None:
                    go = max(go, last_call + timedelta(seconds=interval))
                gap = settings.draw_gap()
                send_at = go if go > utcnow() else None
                waited = max(0.0, (go - utcnow()).total_seconds())
                claimed = replace(work, attempts=work.attempts + 1)
                state, sent = send_work(claimed, tenant, typing_for, send_at, gap=gap, defer=pending)
                report.sent += state == "sent"
                report.failed += state == "failed"
                if state == "queued":
                    return  # refused for now (the session stopped, pacing): the full plan decides
                last_call = sent
                if state == "sent":
                    last = (claimed, (sent, gap))
                slot = sent + timedelta(seconds=gap)
                if len(pending) >= FLUSH_COUNT or time.monotonic() - flushed >= FLUSH_EVERY:
                    flush()
                busy = time.monotonic() - began - waited - typing_for  # writing the outcomes included
                lead = min(LEAD_MAX.total_seconds(), max(LEAD.total_seconds(), 2 * busy))
                if time.monotonic() - extended > EXTEND_EVERY:
                    if not extend_lock(session_id, token):
                        return
                    extended = time.monotonic()
    finally:
        try:
            _give_back(ready)
        finally:
            flush()
