"""Processing: a drain job claims pending events in batches and applies each batch in one transaction.

On PostgreSQL a batch first takes an advisory lock per session (`_claim`), then that session's pending rows FOR
UPDATE SKIP LOCKED; each event goes to its handler (`handlers`), and every write of the batch (messages, session
status, the events' own status, the forwarding ledger) commits together. A batch that fails as a whole is applied
again event by event in savepoints; an event that keeps failing is marked failed after MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select, tuple_, update

from portal.extensions import db, redis_store
from portal.models import Message, WahaSession, WebhookDelivery, WebhookEvent, utcnow
from portal.queue import QUEUE_EVENTS, others_waiting
from portal.services import number_health
from portal.services.events.handlers import _MESSAGE_EVENTS, _apply, _Batch, _Skip, _target_ids
from portal.services.events.signal import DRAIN_FLAG, _count_events, request_drain
from portal.services.media import queue_downloads

log = logging.getLogger(__name__)

BATCH_SIZE = 500  # events per processing transaction
DRAIN_BUDGET_SECONDS = 20.0  # a drain job hands over to a fresh job after this long
YIELD_AFTER_SECONDS = 0.25  # ... or after this long when a job of another queue waits (forwarding, maintenance)
MAX_ATTEMPTS = 5  # an event that failed this often is marked failed
_ADVISORY_CLASS = 5501  # first key of pg_try_advisory_xact_lock(int, int): "event processing of a session"


@dataclass
class DrainResult:
    processed: int = 0
    failed: int = 0
    batches: int = 0
    handed_over: bool = False


_sqlite_lock = threading.Lock()


def drain(*, batch_size: int = BATCH_SIZE, budget: float = DRAIN_BUDGET_SECONDS) -> DrainResult:
    """Process pending events until none are left that this worker may take, or the time budget is spent."""
    try:
        # Cleared before the first claim: any event committed from now on signals a new job.
        redis_store.client.delete(DRAIN_FLAG)
    except Exception:
        log.warning("could not clear the drain flag", exc_info=True)
    result = DrainResult()
    started = time.monotonic()
    tried: set[int] = set()
    while True:
        processed, failed, claimed = process_batch(batch_size, exclude=tried)
        result.processed += processed
        result.failed += failed
        if claimed:
            result.batches += 1
        if not claimed:
            break
        elapsed = time.monotonic() - started
        if elapsed > budget or (elapsed > YIELD_AFTER_SECONDS and others_waiting(QUEUE_EVENTS)):
            result.handed_over = request_drain(force=True)
            break
    return result


def process_batch(
    limit: int = BATCH_SIZE, *, exclude: set[int] | None = None, careful: bool = False
) -> tuple[int, int, int]:
    """Claim and apply up to `limit` pending events in one transaction; returns (processed, failed, claimed).

    `exclude` collects ids that failed in this drain, so they wait for their back-off instead of looping.
    In `careful` mode each event runs in its own savepoint, so one bad event cannot undo the others.
    """
    exclude = exclude if exclude is not None else set()
    if db.engine.dialect.name == "sqlite":
        with _sqlite_lock:
            return _process(limit, exclude, careful)
    return _process(limit, exclude, careful)


def _eligible(now: datetime) -> Any:
    # An event that failed waits attempts² × 15 s before its next try.
    backoff = sa.case(
        *[(WebhookEvent.attempts == n, now - timedelta(seconds=15 * n * n)) for n in range(1, MAX_ATTEMPTS)], else_=now
    )
    return sa.or_(WebhookEvent.attempts == 0, WebhookEvent.received_at < backoff)


def _claim(limit: int, exclude: set[int]) -> list[WebhookEvent]:
    now = utcnow()
    base = [WebhookEvent.status == "pending", WebhookEvent.session_id.is_not(None), _eligible(now)]
    if exclude:
        base.append(WebhookEvent.id.not_in(exclude))
    if db.engine.dialect.name != "postgresql":
        stmt = select(WebhookEvent).where(*base).order_by(WebhookEvent.id).limit(limit)
        return list(db.session.scalars(stmt))
    # Which sessions have the oldest pending events, and how many each (from a bounded scan).
    scan = select(WebhookEvent.session_id, WebhookEvent.id).where(*base).order_by(WebhookEvent.id).limit(limit * 4)
    sub = scan.subquery()
    rows = db.session.execute(
        select(sub.c.session_id, sa.func.count(), sa.func.min(sub.c.id))
        .group_by(sub.c.session_id)
        .order_by(sa.func.min(sub.c.id))
    ).all()
    if not rows:
        return []
    # One worker per session at a time: the others skip it, so a session's events apply in order. Sessions are
    # tried oldest first, a few at a time, until the ones this worker got cover a batch (or none are left).
    counts = {session_id: count for session_id, count, _first in rows}
    order = [session_id for session_id, _count, _first in rows]
    locked: list[str] = []
    covered, position = 0, 0
    while covered < limit and position < len(order) and position < 256:
        chunk: list[str] = []
        needed = limit - covered
        while position < len(order) and (not chunk or needed > 0):
            chunk.append(order[position])
            needed -= counts[order[position]]
            position += 1
        got = db.session.scalars(
            sa.text(
                "SELECT sid FROM unnest(CAST(:sids AS varchar[])) AS sid "
                "WHERE pg_try_advisory_xact_lock(:cls, hashtext(sid))"
            ),
            {"sids": chunk, "cls": _ADVISORY_CLASS},
        ).all()
        locked += got
        covered += sum(counts[sid] for sid in got)
    if not locked:
        return []
    stmt = (
        select(WebhookEvent)
        .where(*base, WebhookEvent.session_id.in_(locked))
        .order_by(WebhookEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(db.session.scalars(stmt))


def _process(limit: int, exclude: set[int], careful: bool) -> tuple[int, int, int]:
    events = _claim(limit, exclude)
    if not events:
        db.session.rollback()
        return 0, 0, 0
    try:
        return _apply_all(events, exclude, careful)
    except Exception:
        db.session.rollback()
        if careful:
            raise
        log.warning(
            "a batch of %d events failed as a whole; applying its events one by one", len(events), exc_info=True
        )
        return _process(limit, exclude, careful=True)


def _apply_all(events: list[WebhookEvent], exclude: set[int], careful: bool) -> tuple[int, int, int]:
    from portal.services import attention, forwarding, optouts

    session_ids = {e.session_id for e in events if e.session_id}
    sessions = {s.id: s for s in db.session.scalars(select(WahaSession).where(WahaSession.id.in_(session_ids)))}
    batch = _Batch(sessions=sessions)
    _preload_messages(batch, events)
    now = utcnow()
    failed = 0
    done: list[int] = []
    last_seen: dict[str, datetime] = {}
    # No autoflush while applying: new rows are written together below, in one statement per table.
    with db.session.no_autoflush:
        for event in events:
            session = sessions.get(event.session_id or "")
            if session is None:
                event.status, event.processed_at, event.error = "ignored", now, "session no longer exists"
                continue
            last_seen[session.id] = max(last_seen.get(session.id, event.received_at), event.received_at)
            try:
                if careful:
                    mark = batch.inbox.mark()
                    try:
                        with db.session.begin_nested():
                            _apply(batch, event, session)
                            db.session.flush()
                    except BaseException:
                        batch.inbox.undo(mark)  # the event's rows are gone: so is its part in the chats
                        raise
                else:
                    _apply(batch, event, session)
            except _Skip as exc:
                event.status, event.error, event.processed_at = "failed", str(exc)[:500], now
                event.attempts += 1
                failed += 1
                continue
            except Exception as exc:
                if not careful:
                    raise
                event.attempts += 1
                event.error = f"{type(exc).__name__}: {exc}"[:500]
                if event.attempts >= MAX_ATTEMPTS:
                    event.status, event.processed_at = "failed", now
                exclude.add(event.id)
                failed += 1
                log.warning(
                    "event %s (%s) failed, attempt %d", event.event_id, event.event, event.attempts, exc_info=True
                )
                continue
            done.append(event.id)
            batch.forward.append((event, session))
        for session_id, seen in last_seen.items():
            session = sessions[session_id]
            if session.last_event_at is None or session.last_event_at < seen:
                session.last_event_at = seen
        deliveries = forwarding.plan_deliveries(batch.forward)
        deliveries += attention.plan_notices(batch.notices)
    preassign_ids(Message, batch.new_messages)
    preassign_ids(WebhookDelivery, deliveries)
    db.session.flush()
    _keep_chats(batch, careful)
    if done:
        db.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(done))
            .values(
                status="done",
                processed_at=now,
                error=None,
                attempts=WebhookEvent.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
    confirmations = optouts.from_inbound(batch.new_messages)
    media_jobs = [(message.id, url) for message, url in batch.media]
    delivery_ids = [d.id for d in deliveries]
    db.session.commit()
    optouts.queue_confirmations(confirmations)
    attention.send_mails(batch.notices)
    for session_id in batch.limits_to_check:
        number_health.schedule_check(session_id)
    _after_commit(media_jobs, delivery_ids)
    _count_events({"processed": len(done), "failed": failed})
    return len(done), failed, len(events)


def _keep_chats(batch: _Batch, careful: bool) -> None:
    """The batch's chats and contacts (services.inbox.upkeep). In careful mode a failure here is logged and
    skipped, so derived rows never hold back the events themselves."""
    if not careful:
        batch.inbox.flush()
        return
    try:
        with db.session.begin_nested():
            batch.inbox.flush()
    except Exception:
        log.warning("chat upkeep of a batch failed; its chats were not updated", exc_info=True)


def preassign_ids(model: Any, rows: list[Any]) -> None:
    """Give new rows their primary keys from the table's sequence in one query, so the rows go out as one executemany
    (PostgreSQL; an INSERT ... RETURNING of hundreds of rows costs far more to build and parse)."""
    pending = [row for row in rows if row.id is None]
    if not pending or db.engine.dialect.name != "postgresql":
        return
    table = model.__tablename__
    ids = db.session.scalars(
        sa.text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :n)"),
        {"n": len(pending)},
    ).all()
    for row, row_id in zip(pending, ids, strict=True):
        row.id = row_id


def _after_commit(media_jobs: list[tuple[int, str]], delivery_ids: list[int]) -> None:
    from portal.services import forwarding

    queue_downloads(media_jobs)
    forwarding.queue_deliveries(delivery_ids)


def _preload_messages(batch: _Batch, events: list[WebhookEvent]) -> None:
    keys = {
        (e.session_id, mid) for e in events if e.event in _MESSAGE_EVENTS and e.session_id for mid in _target_ids(e)
    }
    keys = {k for k in keys if k[1].count("_") >= 2}  # full serialized ids only; short ids are looked up later
    if not keys:
        return
    key_list = list(keys)
    for start in range(0, len(key_list), 1000):
        chunk = key_list[start : start + 1000]
        stmt = select(Message).where(tuple_(Message.session_id, Message.waha_message_id).in_(chunk))
        for message in db.session.scalars(stmt):
            batch.messages[(message.session_id, message.waha_message_id or "")] = message
