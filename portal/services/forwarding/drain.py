"""The forwarding drain: due attempts claimed in batches and sent on a bounded pool of threads.

A drain job (one at a time waits in the queue; a running one clears the flag so new work starts a second) loops:

1. **Claim** up to a few lanes' worth of due attempts (`status = 'pending'`, `due_at <= now`, no live lease), oldest
   due first, at most `WEBHOOK_ENDPOINT_CONCURRENCY` lanes per destination (an endpoint, or a session's URL) in
   flight, with `FOR UPDATE SKIP LOCKED`, and stamp them with this batch's lease (`leased_until`); commit.
2. **Send** each lane (up to LANE_ROWS attempts of one destination, in order) on a thread of the pool
   (`WEBHOOK_CONCURRENCY` threads per worker process). A thread keeps its kept-alive connections, pooled by the
   checked address, so a destination's attempts reuse them; every attempt is still checked against the
   destination policy (the name is resolved once per batch) and sent only to an address that passed.
3. **Record** finished lanes in one transaction (portal.services.forwarding.sending.record), while other lanes are
   still in flight, and claim again.

With nothing due the drain waits for an attempt due within IDLE_WAIT_SECONDS, or asks RQ's scheduler for a job
shortly before the next one and ends. One drain at a time waits so (a Redis lock), looking again every quarter of a
second in case a retry falls due first: the others end at once, so drains woken for later attempts do not each keep
a worker idle while events wait.

A worker that dies mid-batch leaves its claimed rows leased: once the lease (LEASE_SECONDS + WAHA_WEBHOOK_TIMEOUT)
has run out they are claimed again, so an attempt that went out but whose outcome was not committed goes out once
more, with the same webhook-id.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import redis
import sqlalchemy as sa
from flask import current_app
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock
from sqlalchemy import select

from portal.extensions import db, redis_store
from portal.models import WahaSession, WebhookDelivery, WebhookEndpoint, utcnow
from portal.net import policy
from portal.queue import JOB_DRAIN_DELIVERIES, QUEUE_FORWARDING, enqueue, enqueue_at, others_waiting
from portal.services import destinations, session_secrets
from portal.services.forwarding.sending import Attempt, Outcome, post, record, release

log = logging.getLogger(__name__)

LEASE_SECONDS = 120  # a claimed attempt is claimed again this long (plus the timeout) after a worker died
LANE_ROWS = 32  # attempts one thread sends in a row to one destination
LANE_BUDGET_SECONDS = 30.0  # a lane starts no attempt after this; the rest go back to the next batch
DRAIN_BUDGET_SECONDS = 10.0  # a drain stops claiming after this and hands over to a fresh job
YIELD_AFTER_SECONDS = 1.0  # ... or after this long when a job of another queue waits (event processing first)
IDLE_WAIT_SECONDS = 2.0  # with nothing due, wait in the job for an attempt due within this long
WAKE_LEAD_SECONDS = 1.5  # a wake-up job is due this early: RQ's scheduler moves it within a second of its time
DRAIN_FLAG = "portal:forwarding:drain-queued"
DRAIN_FLAG_TTL = 10
WAITER_LOCK = "portal:forwarding:idle-waiter"  # held by the one drain waiting for the next attempt to fall due
WAIT_STEP_SECONDS = 0.25  # that drain looks for due attempts this often while it waits (a retry may fall due first)
DEFAULT_CONCURRENCY = 16
DEFAULT_ENDPOINT_CONCURRENCY = 8
_sqlite_lock = threading.Lock()


@dataclass
class DrainResult:
    claimed: int = 0
    sent: int = 0
    recorded: int = 0
    succeeded: int = 0
    released: int = 0
    handed_over: bool = False


@dataclass
class _Lane:
    lease: datetime
    destination: str
    attempts: list[Attempt]
    outcomes: list[Outcome] = field(default_factory=list)
    unsent: list[int] = field(default_factory=list)


def lease_seconds() -> float:
    """How long a claim holds an attempt: longer than any lane can take (LANE_BUDGET_SECONDS plus the timeout)."""
    return LEASE_SECONDS + current_app.config["WAHA_WEBHOOK_TIMEOUT"] / 1000


# ---------------------------------------------------------------------------------------------- signalling


def request_drain(force: bool = False) -> bool:
    """Ask for a drain job; at most one waits in the queue (a Redis flag guards it). Never raises: without Redis
    the scheduled `dispatch_due` asks again. Returns True when a job was queued."""
    try:
        flagged = not force and current_app.config.get("REDIS_URL")
        if flagged and not redis_store.client.set(DRAIN_FLAG, b"1", nx=True, ex=DRAIN_FLAG_TTL):
            return False  # a queued drain that has not started yet will see the new attempts
        enqueue(JOB_DRAIN_DELIVERIES, queue=QUEUE_FORWARDING, result_ttl=0)
        return True
    except Exception:
        log.warning("could not queue the forwarding drain; the dispatcher asks again", exc_info=True)
        return False


class _Waiter:
    """The right to wait in a drain job for the next attempt to fall due, held by one drain at a time (a Redis lock
    that lapses a second after each wait step), so drains woken for later attempts do not each keep a worker idle
    while events queue up behind them. Without Redis every drain may wait, as if alone."""

    def __init__(self) -> None:
        self.lock: Lock | None = None
        self.holding = False

    def may_wait(self) -> bool:
        if not current_app.config.get("REDIS_URL"):
            return True
        try:
            if self.lock is None:
                self.lock = Lock(redis_store.client, WAITER_LOCK, timeout=WAIT_STEP_SECONDS + 1.0, thread_local=False)
            if self.holding:
                try:
                    self.lock.reacquire()  # this drain waits another step
                    return True
                except LockNotOwnedError:  # it lapsed (a stall longer than a second): take it again if free
                    self.holding = False
            self.holding = bool(self.lock.acquire(blocking=False))
            return self.holding
        except redis.RedisError:
            log.warning("could not check the forwarding drain's wait lock; waiting anyway", exc_info=True)
            return True

    def release(self) -> None:
        if self.lock is not None and self.holding:
            self.holding = False
            try:
                self.lock.release()
            except (LockError, redis.RedisError):
                pass  # it lapses on its own within a second


def _wake_at(when: datetime) -> None:
    """Have a drain job queued shortly before `when` (RQ's scheduler). One job per half second of due times (a
    stable job id), however many drains ask for it."""
    stamp = when.timestamp()
    try:
        enqueue_at(
            when - timedelta(seconds=WAKE_LEAD_SECONDS),
            JOB_DRAIN_DELIVERIES,
            queue=QUEUE_FORWARDING,
            job_id=f"forwarding-wake-{int(stamp * 2)}",
        )
    except Exception:
        log.warning("could not schedule the next forwarding drain; the dispatcher will", exc_info=True)


# ---------------------------------------------------------------------------------------------- the pool

_pool_state: dict[str, Any] = {"pid": None, "pool": None, "size": 0}


def _pool(size: int) -> ThreadPoolExecutor:
    """The process's sending threads (made again after a fork, or when the configured size changes)."""
    state = _pool_state
    if state["pool"] is None or state["pid"] != os.getpid() or state["size"] != size:
        state.update(pid=os.getpid(), size=size, pool=ThreadPoolExecutor(size, thread_name_prefix="forward"))
    return state["pool"]


class _BatchResolver:
    """Resolves each host once per batch; the policy still checks every address for every attempt."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, int], list[str]] = {}
        self.lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        key = (host, port)
        with self.lock:
            if key not in self.answers:
                self.answers[key] = policy.system_resolver(host, port)
            return self.answers[key]


def _run_lane(lane: _Lane, *, timeout: float, allow_private: bool, resolve: policy.Resolver) -> _Lane:
    deadline = time.monotonic() + LANE_BUDGET_SECONDS
    for n, attempt in enumerate(lane.attempts):
        if time.monotonic() > deadline:
            lane.unsent.extend(a.id for a in lane.attempts[n:])
            break
        outcome = post(attempt, timeout=timeout, allow_private=allow_private, resolve=resolve)
        lane.outcomes.append(outcome)
        if outcome.error and outcome.error.startswith("no answer within"):
            # the destination does not answer: the rest of the lane waits for the next batch instead of
            # each taking the whole timeout
            lane.unsent.extend(a.id for a in lane.attempts[n + 1 :])
            break
    return lane


# ---------------------------------------------------------------------------------------------- claiming


def _destination(endpoint_id: int | None, url: str) -> str:
    return f"e{endpoint_id}" if endpoint_id is not None else f"u{url}"


def _claim(
    lanes_free: int, busy: dict[str, int], per_destination: int, ids: Iterable[int] | None = None
) -> list[_Lane]:
    """Claim due attempts for up to `lanes_free` lanes (none for destinations at their limit); commits."""
    now = utcnow()
    live = sa.or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now)
    where = [WebhookDelivery.status == "pending", live]
    where.append(WebhookDelivery.id.in_(list(ids)) if ids is not None else WebhookDelivery.due_at <= now)
    scan = (
        select(WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookDelivery.url)
        .where(*where)
        .order_by(WebhookDelivery.due_at, WebhookDelivery.id)
        .limit(lanes_free * LANE_ROWS * 2)
    )
    chosen: list[int] = []
    granted: dict[str, int] = {}
    room: dict[str, int] = {}
    for row_id, endpoint_id, url in db.session.execute(scan):
        key = _destination(endpoint_id, url)
        if key not in granted:
            granted[key] = max(0, min(per_destination - busy.get(key, 0), lanes_free))
            lanes_free -= granted[key]
            room[key] = granted[key] * LANE_ROWS
        if room[key] > 0:
            room[key] -= 1
            chosen.append(row_id)
    if not chosen:
        db.session.rollback()
        return []
    # One statement takes the rows (skipping those another worker is taking) and stamps this batch's lease.
    table = cast(sa.Table, WebhookDelivery.__table__)
    lease = now + timedelta(seconds=lease_seconds())
    free_rows = select(table.c.id).where(
        table.c.id.in_(chosen),
        table.c.status == "pending",
        sa.or_(table.c.leased_until.is_(None), table.c.leased_until < now),
    )
    if db.engine.dialect.name == "postgresql":
        free_rows = free_rows.with_for_update(skip_locked=True)
    taken = db.session.execute(
        sa.update(table)
        .where(table.c.id.in_(free_rows.scalar_subquery()))
        .values(leased_until=lease)
        .returning(table.c.id, table.c.endpoint_id, table.c.session_id, table.c.url, table.c.msg_id, table.c.payload)
        .execution_options(synchronize_session=False)
    ).all()
    order = {row_id: n for n, row_id in enumerate(chosen)}  # oldest due first, as scanned
    grouped: dict[str, list[Attempt]] = {}
    secrets_of: dict[tuple[str, Any], str | None] = {}
    for row in sorted(taken, key=lambda r: order[r.id]):
        key = _destination(row.endpoint_id, row.url)
        secret = _secret(row.endpoint_id, row.session_id, secrets_of)
        grouped.setdefault(key, []).append(Attempt(row.id, row.url, row.msg_id, row.payload, secret, key))
    db.session.commit()
    lanes: list[_Lane] = []
    for key, attempts in grouped.items():
        count = min(granted[key], len(attempts))  # the destination's rows spread over every lane it may use
        lanes += [_Lane(lease, key, attempts[n::count]) for n in range(count)]
    return lanes


def _secret(endpoint_id: int | None, session_id: str | None, known: dict[tuple[str, Any], str | None]) -> str | None:
    key = ("endpoint", endpoint_id) if endpoint_id is not None else ("session", session_id)
    if key not in known:
        if endpoint_id is not None:
            endpoint = db.session.get(WebhookEndpoint, endpoint_id)
            known[key] = endpoint.secret if endpoint is not None and endpoint.is_enabled else None
        else:
            session = db.session.get(WahaSession, session_id) if session_id else None
            known[key] = session_secrets.secret_for(session) if session is not None else None
    return known[key]


def _next_due() -> datetime | None:
    now = utcnow()
    return db.session.scalar(
        select(sa.func.min(WebhookDelivery.due_at)).where(
            WebhookDelivery.status == "pending",
            sa.or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now),
        )
    )


# ---------------------------------------------------------------------------------------------- the drain


class _Drain:
    def __init__(self, ids: Iterable[int] | None = None) -> None:
        config = current_app.config
        self.concurrency = int(config.get("WEBHOOK_CONCURRENCY", DEFAULT_CONCURRENCY))
        self.per_destination = int(config.get("WEBHOOK_ENDPOINT_CONCURRENCY", DEFAULT_ENDPOINT_CONCURRENCY))
        self.timeout = config["WAHA_WEBHOOK_TIMEOUT"] / 1000
        self.allow_private = destinations.allow_private()
        self.pool = _pool(self.concurrency)
        self.ids = list(ids) if ids is not None else None
        self.in_flight: dict[Future, _Lane] = {}
        self.busy: dict[str, int] = {}
        self.resolver = _BatchResolver()
        self.result = DrainResult()
        self.waiter = _Waiter()

    def claim_and_start(self) -> int:
        free = self.concurrency - len(self.in_flight)
        if free <= 0:
            return 0
        if len(self.in_flight) == 0:
            self.resolver = _BatchResolver()  # a fresh look-up of every name at least once per batch
        lanes = _claim(free, self.busy, self.per_destination, self.ids)
        self.result.claimed += sum(len(lane.attempts) for lane in lanes)
        for lane in lanes:
            future = self.pool.submit(
                _run_lane, lane, timeout=self.timeout, allow_private=self.allow_private, resolve=self.resolver
            )
            self.in_flight[future] = lane
            self.busy[lane.destination] = self.busy.get(lane.destination, 0) + 1
        return len(lanes)

    def collect(self, timeout: float | None) -> None:
        """Record the lanes that finished (waiting up to `timeout` for the first one; None: for all)."""
        if not self.in_flight:
            return
        if timeout is None:
            done = set(wait(list(self.in_flight)).done)
        else:
            done = set(wait(list(self.in_flight), timeout=timeout, return_when=FIRST_COMPLETED).done)
        if not done:
            return
        lanes = [self.in_flight.pop(future) for future in done]
        for lane in lanes:
            self.busy[lane.destination] -= 1
            if not self.busy[lane.destination]:
                del self.busy[lane.destination]
        by_lease: dict[datetime, list[_Lane]] = {}
        for lane in lanes:
            by_lease.setdefault(lane.lease, []).append(lane)
        try:
            for lease, group in by_lease.items():
                outcomes = [o for lane in group for o in lane.outcomes]
                record(outcomes, lease)
                self.result.recorded += len(outcomes)
                release([i for lane in group for i in lane.unsent], lease)
                self.result.sent += sum(1 for o in outcomes if o.sent_at is not None)
                self.result.succeeded += sum(1 for o in outcomes if o.status == "succeeded")
                self.result.released += sum(len(lane.unsent) for lane in group)
            db.session.commit()
        except Exception:
            db.session.rollback()  # the rows stay leased and go out again after the lease (at least once)
            raise


def drain(*, budget: float = DRAIN_BUDGET_SECONDS, ids: Iterable[int] | None = None) -> DrainResult:
    """Send due attempts until none are due soon or the budget is spent (then a fresh job takes over).

    With `ids`, send just those pending attempts (due or not) and stop.
    """
    if db.engine.dialect.name == "sqlite":
        with _sqlite_lock:
            return _drain(budget, ids)
    return _drain(budget, ids)


def _drain(budget: float, ids: Iterable[int] | None) -> DrainResult:
    if ids is None and current_app.config.get("REDIS_URL"):
        try:
            redis_store.client.delete(DRAIN_FLAG)  # from now on new attempts queue a second drain
        except Exception:
            log.warning("could not clear the forwarding drain flag", exc_info=True)
    run = _Drain(ids)
    started = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - started
            if elapsed > budget or (elapsed > YIELD_AFTER_SECONDS and ids is None and others_waiting(QUEUE_FORWARDING)):
                run.collect(None)
                following = _next_due()
                db.session.rollback()
                if following is not None and following <= utcnow():
                    run.result.handed_over = request_drain(force=True)
                elif following is not None:
                    _wake_at(following)
                break
            started_lanes = run.claim_and_start()
            if run.in_flight:
                run.collect(0.0 if started_lanes and len(run.in_flight) < run.concurrency else 0.05)
                continue
            if ids is not None:
                break
            following = _next_due()
            db.session.rollback()
            if following is None:
                break
            wait_for = (following - utcnow()).total_seconds()
            if wait_for <= 0:
                continue
            if (
                wait_for <= IDLE_WAIT_SECONDS
                and time.monotonic() - started + wait_for < budget
                and run.waiter.may_wait()
            ):
                time.sleep(min(wait_for, WAIT_STEP_SECONDS))
                continue
            # later than the idle wait, or another drain waits for it already (the wake-up job is there should
            # that one have died)
            _wake_at(following)
            break
    finally:
        run.waiter.release()
        if run.in_flight:
            run.collect(None)
    return run.result


def deliver(delivery_id: int) -> str:
    """Send one pending attempt now (due or not) and record its outcome; returns its new status, or "skipped" when
    the row is not pending or another batch holds it."""
    if not drain(ids=[delivery_id]).claimed:
        return "skipped"
    db.session.expire_all()
    row = db.session.get(WebhookDelivery, delivery_id)
    status = row.status if row is not None else "skipped"
    db.session.rollback()
    return status
