"""Events from WAHA: durable ingest, batch processing, the sweeper, inbound media.

Ingest (the webhook view calls `ingest`): the per-session HMAC is checked over the raw bytes, every event of the
request goes into `webhook_events` with one statement (a repeated event id is a no-op) and one commit, then one
"drain" signal is sent to Redis. If Redis is down the rows simply stay pending and the sweeper queues them.

Processing (`drain`): a job takes pending events in batches. On PostgreSQL a batch first takes an advisory lock
per session (so two workers never work on the same session and each session's events apply in arrival order),
then claims that session's pending rows with FOR UPDATE SKIP LOCKED. A worker that dies mid-batch rolls back with
its connection: its rows are pending again and the sweeper queues them. Every write of a batch (messages, session
status, the events' own status, the forwarding ledger) commits together, so an event is applied exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import select, tuple_, update
import psycopg
from sqlalchemy.exc import IntegrityError

from portal.extensions import db, redis_store
from portal.models import (
    ACK_NAMES, STATUS_RANK, Message, WahaSession, WebhookDelivery, WebhookEvent, utcnow,
)
from portal.services import webhook_input
from portal.services.audit import Actor
from portal.services.errors import Invalid, NotFound, Unauthorized
from portal.services.media import (  # noqa: F401  (fetch and serve live in services.media; re-exported here)
    MEDIA_JOB, fetch_media, media_for_message, media_record, queue_downloads, requeue_pending,
)

log = logging.getLogger(__name__)

# Body limits of the receiver: WAHA sends one event per request; a batch is an array (our own tools, replays).
MAX_EVENT_BYTES = 1024 * 1024
MAX_BATCH_BYTES = 10 * 1024 * 1024
MAX_BATCH_EVENTS = 1000

BATCH_SIZE = 500  # events per processing transaction
DRAIN_BUDGET_SECONDS = 20.0  # a drain job hands over to a fresh job after this long
MAX_ATTEMPTS = 5  # an event that failed this often is marked failed
DRAIN_FLAG = "portal:events:drain-queued"
DRAIN_FLAG_TTL = 10  # seconds; a lost drain job is replaced after this long at the latest
SIGNAL_COALESCE_SECONDS = 0.05  # a busy receiver signals at most this often per process
DRAIN_JOB = "portal.jobs.events.drain_events"
REDIS_PAUSE_SECONDS = 5.0  # after a Redis failure the receiver stops trying to signal for this long
_ADVISORY_CLASS = 5501  # first key of pg_try_advisory_xact_lock(int, int): "event processing of a session"

WAHA = Actor(type="waha", label="waha")

_ACK_COLUMN = {"SERVER": "server_at", "DEVICE": "delivered_at", "READ": "read_at", "PLAYED": "played_at",
               "ERROR": "failed_at"}


# ============================================================================================== ingest


@dataclass
class IngestResult:
    """What one webhook request did: events written (new), repeats skipped, whether processing was signalled."""

    received: int
    stored: int
    ignored: bool = False
    queued: bool = False
    stale: int = 0  # outside the replay window: not stored


@dataclass(frozen=True)
class _SessionKey:
    session_id: str
    tenant_id: int
    name: str
    key: bytes
    expires: float


class _KeyCache:
    """Per-process cache of session HMAC keys, so a webhook costs no key lookup (keys are decrypted once)."""

    TTL = 60.0
    MAX = 20000

    def __init__(self) -> None:
        self._items: dict[str, _SessionKey] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str) -> _SessionKey | None:
        item = self._items.get(session_id)
        if item is not None and item.expires > time.monotonic():
            return item
        return None

    def put(self, item: _SessionKey) -> None:
        with self._lock:
            if len(self._items) >= self.MAX:
                self._items.clear()
            self._items[item.session_id] = item

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._items.pop(session_id, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_keys = _KeyCache()
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UNKNOWN_SESSION_WAITS = (0.05, 0.1, 0.2, 0.4)  # seconds between look-ups of a session id not found (yet)
_late_waiters = threading.BoundedSemaphore(4)  # requests of one process that may wait so; the rest answer at once
_redis_down_until: tuple[Any, float] = (None, 0.0)  # (the Redis client that failed, until when to skip it)
_ingest_engines: dict[str, sa.Engine] = {}
_ingest_lock = threading.Lock()


def _after_fork() -> None:
    global _ingest_lock, _redis_down_until, _signal, _writer, _late_waiters
    _signal = _DrainSignal()
    _writer = _GroupWriter()
    _writer_conn[0] = None  # the parent's socket stays the parent's
    _redis_down_until = (None, 0.0)
    _ingest_lock = threading.Lock()
    _ingest_engines.clear()
    _keys.clear()
    _late_waiters = threading.BoundedSemaphore(4)


os.register_at_fork(after_in_child=_after_fork)


def forget_session_key(session_id: str) -> None:
    """Drop a cached HMAC key (after a key change or a delete) in this process."""
    _keys.drop(session_id)


def _lookup_key(session_id: str) -> _SessionKey | None:
    row = db.session.execute(
        select(WahaSession.id, WahaSession.tenant_id, WahaSession.name, WahaSession.hmac_key)
        .where(WahaSession.id == session_id)).first()
    db.session.rollback()  # end the read transaction: the insert runs on its own connection
    if row is None:
        return None
    item = _SessionKey(row.id, row.tenant_id, row.name, row.hmac_key.encode(), time.monotonic() + _KeyCache.TTL)
    _keys.put(item)
    return item


def _session_key(session_id: str) -> _SessionKey | None:
    cached = _keys.get(session_id)
    if cached is not None:
        return cached
    if not _UUID_RE.match(session_id or ""):
        return None
    item = _lookup_key(session_id)
    if item is not None or not _late_waiters.acquire(blocking=False):
        return item
    try:
        # WAHA emits a new session's first events while the portal is still committing the row it created
        # before calling WAHA: give that commit a moment rather than dropping the events as unknown.
        for delay in UNKNOWN_SESSION_WAITS:
            time.sleep(delay)
            item = _lookup_key(session_id)
            if item is not None:
                return item
        return None
    finally:
        _late_waiters.release()


def signature_ok(key: bytes, body: bytes, signature: str | None) -> bool:
    """True when `signature` is the lowercase hex HMAC-SHA512 of `body` under `key` (constant-time compare)."""
    if not signature:
        return False
    expected = hmac.new(key, body, hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """One event object or a JSON array of them; Invalid when the body is not that."""
    try:
        # UTF-8 only (what WAHA sends and what is stored); too deep a nesting is bad input, not a crash
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Invalid("The body is not valid JSON.", code="bad_json") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise Invalid("The batch is empty.", code="bad_event")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("event"), str):
            raise Invalid("Every event must be an object with an 'event' name.", code="bad_event")
    return items


def _event_id(item: dict[str, Any], raw: bytes | None) -> str:
    event_id = item.get("id")
    if isinstance(event_id, str) and 0 < len(event_id) <= 64:
        return event_id
    # WAHA always sends an id; without one, the content itself makes a repeat recognisable.
    digest = hashlib.sha256(raw if raw is not None else json.dumps(item, sort_keys=True).encode()).hexdigest()
    return "sha_" + digest[:60]


def ingest(session_param: str | None, body: bytes, signature: str | None) -> IngestResult:
    """Verify, store and signal one webhook request. Raises NotFound (unknown or missing session: nothing is
    stored), Unauthorized (bad HMAC) or Invalid (bad JSON). Events outside the replay window are not stored."""
    session_key = _session_key(session_param or "")
    if session_key is None:
        raise _unknown_session(session_param, body)
    if not signature_ok(session_key.key, body, signature):
        raise Unauthorized("The webhook signature does not match.", code="bad_signature")
    items = parse_events(body)
    if len(items) > MAX_BATCH_EVENTS:
        raise Invalid(f"A batch holds at most {MAX_BATCH_EVENTS} events.", code="batch_too_large")
    config = current_app.config
    window = float(config.get("WEBHOOK_REPLAY_WINDOW", REPLAY_WINDOW_SECONDS))
    skew = float(config.get("WEBHOOK_CLOCK_SKEW", CLOCK_SKEW_SECONDS))
    now = webhook_input.now_ms()
    fresh = [n for n, item in enumerate(items) if not webhook_input.stale(item, now, window, skew)]
    stale = len(items) - len(fresh)
    if stale:
        _log_stale(session_key.session_id, stale, window)
    batch = _Incoming.of(items, body, None if not stale else fresh)
    try:
        stored = _store(batch, session_key.session_id, session_key.tenant_id, "pending") if batch.items else 0
    except IntegrityError:
        # The session was deleted since its key was cached: its events have no one to go to.
        forget_session_key(session_key.session_id)
        raise _unknown_session(session_param, body) from None
    _signal.count(received=len(items), duplicate=len(batch.items) - stored, stale=stale)
    queued = _signal.after_commit() if stored else False
    return IngestResult(received=len(items), stored=stored, queued=queued, stale=stale)


REPLAY_WINDOW_SECONDS = 3600.0  # WEBHOOK_REPLAY_WINDOW: WAHA's retries to the portal span ~20 minutes
CLOCK_SKEW_SECONDS = 300.0  # WEBHOOK_CLOCK_SKEW: how far in the future an event's timestamp may be
_unknown_log = webhook_input.LogThrottle(60.0)
_stale_log = webhook_input.LogThrottle(60.0)


def _unknown_session(session_param: str | None, body: bytes) -> NotFound:
    """Count a request for no known session (nothing is stored) and log it at most once a minute."""
    _signal.count(unknown_session=1)
    held = _unknown_log.ready()
    if held is not None:
        log.warning("webhook for unknown session %r (%d bytes) refused with 404%s", (session_param or "")[:64],
                    len(body), f"; {held} more since the last such line" if held else "")
    return NotFound("No session with this id.", code="session_not_found")


def _log_stale(session_id: str, count: int, window: float) -> None:
    held = _stale_log.ready()
    if held is not None:
        log.warning("session %s: %d event(s) with a timestamp outside the %.0f s replay window not stored%s",
                    session_id, count, window, f"; {held} more such requests since the last line" if held else "")


@dataclass
class _Incoming:
    """The events of one request. When nothing had to change, PostgreSQL parses the raw text itself (nothing is
    serialized again); events outside the replay window are left out, and NUL characters are cleaned out of the
    payload (the event as received is kept in `raws`)."""

    items: list[dict[str, Any]]
    body: bytes
    is_array: bool
    raws: list[str | None]
    changed: bool = False

    @classmethod
    def of(cls, items: list[dict[str, Any]], body: bytes, keep: list[int] | None) -> "_Incoming":
        is_array = body.lstrip()[:1] == b"["
        raws: list[str | None] = [None] * len(items)
        changed = keep is not None
        if webhook_input.needs_cleaning(body):
            cleaned = []
            for n, item in enumerate(items):
                item, raw = webhook_input.clean_event(item)
                cleaned.append(item)
                if raw is not None:
                    raws[n] = raw if is_array else body.decode("utf-8")
                    changed = True
            items = cleaned
        if keep is not None:
            items, raws = [items[n] for n in keep], [raws[n] for n in keep]
        return cls(items, body, is_array, raws, changed)

    def event_ids(self) -> list[str]:
        raw = None if self.is_array else self.body
        return [_event_id(item, raw) for item in self.items]

    def text(self) -> str:
        """The JSON text PostgreSQL stores: the body as sent, or the events serialized after a change."""
        if not self.changed:
            return self.body.decode("utf-8")
        return json.dumps(self.items if self.is_array else self.items[0], separators=(",", ":"))


class _DrainSignal:
    """Coalesces the receiver's drain signals per process, so a busy receiver makes no Redis round trip per request.

    The first commit after a quiet spell signals at once (one SET NX, plus an enqueue when no drain job waits).
    Commits within SIGNAL_COALESCE_SECONDS of a signal only mark the process "dirty"; a small thread sends one
    signal for all of them at the end of the window. A process that dies in between leaves its rows pending:
    the sweeper queues them.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = 0.0
        self.dirty = False
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.app: Any = None
        self.window = SIGNAL_COALESCE_SECONDS
        self.counts: dict[str, int] = {}

    def count(self, **outcomes: int) -> None:
        """Add to the receiver's event counters; the thread hands them to the shared metrics in one round trip."""
        with self.lock:
            for outcome, amount in outcomes.items():
                if amount:
                    self.counts[outcome] = self.counts.get(outcome, 0) + amount
            self._ensure_thread()

    def after_commit(self) -> bool:
        now = time.monotonic()
        config = current_app.config
        # Tests run a burst worker right after a request: there every commit signals at once.
        self.window = float(config.get("EVENTS_SIGNAL_COALESCE_SECONDS",
                                       0 if config.get("TESTING") else SIGNAL_COALESCE_SECONDS))
        with self.lock:
            if now - self.last >= self.window:
                self.last, self.dirty = now, False
                immediate = True
            else:
                self.dirty, immediate = True, False
                self._ensure_thread()
        return request_drain() if immediate else False

    def _ensure_thread(self) -> None:
        if self.thread is not None and self.thread.is_alive() and self.pid == os.getpid():
            return
        self.pid = os.getpid()
        self.app = current_app._get_current_object()  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self._run, name="events-signal", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.window or SIGNAL_COALESCE_SECONDS)
            with self.lock:
                counts, self.counts = self.counts, {}
                signal = self.dirty
                if signal:
                    self.dirty, self.last = False, time.monotonic()
            if not (signal or counts):
                continue
            try:
                with self.app.app_context():
                    if counts:
                        _count_events(counts)
                    if signal:
                        request_drain()
            except Exception:
                log.warning("deferred drain signal failed", exc_info=True)


def _count_events(counts: dict[str, int]) -> None:
    """Add to the shared `webhook_events` counters in one Redis round trip (never raises)."""
    from portal import metrics

    counts = {k: v for k, v in counts.items() if v}
    if not counts:
        return
    try:
        pipe = redis_store.client.pipeline(transaction=False)
        for outcome, amount in counts.items():
            metrics.webhook_events.labels(outcome).inc(amount, pipeline=pipe)
        pipe.execute()
    except Exception:
        log.debug("event counters not recorded", exc_info=True)


_signal = _DrainSignal()


_PG_COLUMNS = ("(event_id, tenant_id, session_id, session_name, event, payload, raw, status, attempts, "
               "received_at)")
_PG_ROW = "(%s, %s, %s, %s, %s, %s::jsonb, %s, %s, 0, now())"


def _ingest_engine() -> sa.Engine:
    """An autocommit engine for the receiver: each INSERT is its own transaction, so a flush costs one round trip
    to PostgreSQL (no BEGIN/COMMIT, no pre-ping; a dropped connection is retried once, the insert is idempotent)."""
    url = db.engine.url
    key = url.render_as_string(hide_password=False)
    engine = _ingest_engines.get(key)
    if engine is None:
        with _ingest_lock:
            engine = _ingest_engines.get(key)
            if engine is None:
                engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=False,
                                          pool_reset_on_return=None, pool_size=4, max_overflow=12)
                _ingest_engines[key] = engine
    return engine


class _Pending:
    __slots__ = ("params", "ready", "lead", "inserted", "error")

    def __init__(self, params: list[tuple]) -> None:
        self.params = params
        self.ready = threading.Event()
        self.lead = False
        self.inserted: set[str] = set()
        self.error: BaseException | None = None


class _GroupWriter:
    """Group commit for the receiver (PostgreSQL): requests that arrive while an insert is in flight are written
    together by the next one, as one multi-row INSERT and one commit. Each request still returns only after its
    own rows are committed; under load, many requests share one round trip and one WAL flush.
    """

    MAX_ROWS = 5000  # 8 parameters a row stays far below PostgreSQL's 65,535

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: list[_Pending] = []
        self.busy = False

    def write(self, params: list[tuple]) -> set[str]:
        """Insert the rows (repeats skipped); returns the event ids that were new."""
        item = _Pending(params)
        with self.lock:
            self.queue.append(item)
            lead = not self.busy
            self.busy = True
        if not lead:
            item.ready.wait()
        if not item.lead and not lead:
            if item.error is not None:
                raise item.error
            return item.inserted
        with self.lock:
            group, rows = [], 0
            while self.queue and (not group or rows + len(self.queue[0].params) <= self.MAX_ROWS):
                taken = self.queue.pop(0)
                group.append(taken)
                rows += len(taken.params)
        try:
            self._flush(group)
        finally:
            with self.lock:
                if self.queue:
                    successor = self.queue[0]
                    successor.lead = True
                    successor.ready.set()
                else:
                    self.busy = False
            for other in group:
                if other is not item:
                    other.ready.set()
        if item.error is not None:
            raise item.error
        return item.inserted

    def _flush(self, group: list[_Pending]) -> None:
        try:
            inserted = _insert_rows([p for item in group for p in item.params])
        except psycopg.Error as exc:
            if len(group) == 1:
                group[0].error = exc
                return
            for item in group:  # one bad request (a session deleted meanwhile) must not fail the others
                self._flush([item])
            return
        # Two requests of one group may carry the same event (WAHA's retry racing the original): the new row
        # is counted for the first of them only, so `stored` and the duplicate count stay exact.
        remaining = set(inserted)
        for item in group:
            item.inserted = {p[0] for p in item.params} & remaining
            remaining -= item.inserted


def _insert_rows(params: list[tuple]) -> set[str]:
    sql = (f"INSERT INTO webhook_events {_PG_COLUMNS} VALUES " + ", ".join([_PG_ROW] * len(params))
           + " ON CONFLICT (event_id) DO NOTHING RETURNING event_id")
    flat = [value for row in params for value in row]
    for attempt in (1, 2):
        try:
            connection = _writer_connection()
            with connection.cursor() as cursor:
                # Only small groups repeat their shape often enough to be worth a prepared statement.
                cursor.execute(sql, flat, prepare=None if len(params) <= 16 else False)
                return {row[0] for row in cursor.fetchall()}
        except psycopg.OperationalError:
            _drop_writer_connection()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


_writer_conn: list[Any] = [None]


def _writer_connection() -> Any:
    """The group writer's own autocommit connection (flushes are serialized, so one per process is enough)."""
    connection = _writer_conn[0]
    if connection is None or connection.closed:
        conninfo = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        connection = psycopg.connect(conninfo, autocommit=True, application_name="portal-ingest")
        _writer_conn[0] = connection
    return connection


def _drop_writer_connection() -> None:
    connection, _writer_conn[0] = _writer_conn[0], None
    if connection is not None:
        try:
            connection.close()
        except psycopg.Error:
            pass


_writer = _GroupWriter()

_PG_INSERT_ARRAY = (
    f"INSERT INTO webhook_events {_PG_COLUMNS} "
    "SELECT (%s::text[])[x.ord], %s, %s, left(x.e->>'session', 64), left(x.e->>'event', 64), x.e, "
    "(%s::text[])[x.ord], %s, 0, now() "
    "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS x(e, ord) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


def _store(batch: "_Incoming", session_id: str | None, tenant_id: int | None, status: str) -> int:
    """Insert the events (repeats skipped) and commit; returns how many rows are new."""
    ids = batch.event_ids()
    if db.engine.dialect.name == "postgresql":
        try:
            if batch.is_array:
                # A batch is already a group: one statement, PostgreSQL splits the array it parses anyway.
                return len(_insert_array(ids, batch.text(), batch.raws, session_id, tenant_id, status))
            item = batch.items[0]
            row = (ids[0], tenant_id, session_id, str(item.get("session") or "")[:64] or None, item["event"][:64],
                   batch.text(), batch.raws[0], status)
            return len(_writer.write([row]))
        except psycopg.errors.ForeignKeyViolation as exc:
            # the same error whatever the database, for the caller
            raise IntegrityError("insert webhook_events", None, exc) from exc
    # SQLite (embedded default): the ORM path, one transaction.
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    now = utcnow()
    values = [{"event_id": event_id, "tenant_id": tenant_id, "session_id": session_id,
               "session_name": str(item.get("session") or "")[:64] or None, "event": item["event"][:64],
               "payload": item, "raw": raw, "status": status, "attempts": 0, "received_at": now}
              for event_id, item, raw in zip(ids, batch.items, batch.raws)]
    result = db.session.execute(sqlite_insert(WebhookEvent).values(values).on_conflict_do_nothing(
        index_elements=["event_id"]))
    db.session.commit()
    return max(result.rowcount, 0)


def _insert_array(ids: list[str], body: str, raws: list[str | None], session_id: str | None,
                  tenant_id: int | None, status: str) -> set[str]:
    for attempt in (1, 2):
        try:
            with _ingest_engine().connect() as conn:
                with conn.connection.driver_connection.cursor() as cursor:
                    cursor.execute(_PG_INSERT_ARRAY, (ids, tenant_id, session_id, raws, status, body))
                    return {row[0] for row in cursor.fetchall()}
        except psycopg.OperationalError:
            if attempt == 2:
                raise
            _ingest_engine().dispose()
    raise AssertionError("unreachable")


def request_drain(force: bool = False) -> bool:
    """Ask for a drain job: at most one waits in the queue at a time (a Redis flag guards it). Never raises:
    without Redis the events wait for the sweeper. Returns True when a job was queued."""
    global _redis_down_until
    from portal.jobs import QUEUE_EVENTS, enqueue, retry_policy

    client = redis_store.client
    if not force and _redis_down_until[0] is client and time.monotonic() < _redis_down_until[1]:
        return False  # Redis failed a moment ago: answer WAHA now instead of waiting on connection retries
    try:
        if not force and not client.set(DRAIN_FLAG, b"1", nx=True, ex=DRAIN_FLAG_TTL):
            return False  # a queued drain job that has not started yet will see these events
        enqueue(DRAIN_JOB, queue=QUEUE_EVENTS, retry=retry_policy(3, (5, 30, 120)), result_ttl=0)
        return True
    except Exception as exc:  # Redis down or unreachable: the rows are durable, the sweeper catches up
        _redis_down_until = (client, time.monotonic() + REDIS_PAUSE_SECONDS)
        log.warning("could not queue event processing (%s); the sweeper will", type(exc).__name__)
        return False


# ============================================================================================== processing


@dataclass
class DrainResult:
    processed: int = 0
    failed: int = 0
    batches: int = 0
    handed_over: bool = False


@dataclass
class _Batch:
    """State of one processing transaction."""

    sessions: dict[str, WahaSession]
    messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    new_messages: list[Message] = field(default_factory=list)
    media: list[tuple[Message, str]] = field(default_factory=list)
    forward: list[tuple[WebhookEvent, WahaSession]] = field(default_factory=list)
    notices: list[Any] = field(default_factory=list)


class _Skip(Exception):
    """An event that cannot be applied, ever (no id, malformed): recorded as failed at once."""


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
        if time.monotonic() - started > budget:
            result.handed_over = request_drain(force=True)
            break
    return result


def process_batch(limit: int = BATCH_SIZE, *, exclude: set[int] | None = None,
                  careful: bool = False) -> tuple[int, int, int]:
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
    backoff = sa.case(*[(WebhookEvent.attempts == n, now - timedelta(seconds=15 * n * n))
                        for n in range(1, MAX_ATTEMPTS)], else_=now)
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
        select(sub.c.session_id, sa.func.count(), sa.func.min(sub.c.id)).group_by(sub.c.session_id)
        .order_by(sa.func.min(sub.c.id))).all()
    if not rows:
        return []
    # One worker per session at a time: the others skip it, so a session's events apply in order. Sessions are
    # tried oldest first, a few at a time, until the ones this worker got cover a batch (or none are left).
    counts = {session_id: count for session_id, count, _first in rows}
    order = [session_id for session_id, _count, _first in rows]
    locked: list[str] = []
    covered, position = 0, 0
    while covered < limit and position < len(order) and position < 256:
        chunk, needed = [], limit - covered
        while position < len(order) and (not chunk or needed > 0):
            chunk.append(order[position])
            needed -= counts[order[position]]
            position += 1
        got = db.session.scalars(sa.text(
            "SELECT sid FROM unnest(CAST(:sids AS varchar[])) AS sid "
            "WHERE pg_try_advisory_xact_lock(:cls, hashtext(sid))"), {"sids": chunk, "cls": _ADVISORY_CLASS}).all()
        locked += got
        covered += sum(counts[sid] for sid in got)
    if not locked:
        return []
    stmt = (select(WebhookEvent).where(*base, WebhookEvent.session_id.in_(locked)).order_by(WebhookEvent.id)
            .limit(limit).with_for_update(skip_locked=True))
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
        log.warning("a batch of %d events failed as a whole; applying its events one by one", len(events),
                    exc_info=True)
        return _process(limit, exclude, careful=True)


def _apply_all(events: list[WebhookEvent], exclude: set[int], careful: bool) -> tuple[int, int, int]:
    from portal.services import attention, forwarding

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
                    with db.session.begin_nested():
                        _apply(batch, event, session)
                        db.session.flush()
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
                log.warning("event %s (%s) failed, attempt %d", event.event_id, event.event, event.attempts,
                            exc_info=True)
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
    if done:
        db.session.execute(update(WebhookEvent).where(WebhookEvent.id.in_(done)).values(
            status="done", processed_at=now, error=None, attempts=WebhookEvent.attempts + 1,
        ).execution_options(synchronize_session=False))
    media_jobs = [(message.id, url) for message, url in batch.media]
    delivery_ids = [d.id for d in deliveries]
    db.session.commit()
    attention.send_mails(batch.notices)
    _after_commit(media_jobs, delivery_ids)
    _count_events({"processed": len(done), "failed": failed})
    return len(done), failed, len(events)


def preassign_ids(model: Any, rows: list[Any]) -> None:
    """Give new rows their primary keys from the table's sequence in one query, so the rows go out as one executemany
    (PostgreSQL; an INSERT ... RETURNING of hundreds of rows costs far more to build and parse). Take primary keys from the table's sequence in one query, so the rows go out as one executemany
    (PostgreSQL; an INSERT ... RETURNING of hundreds of rows costs far more to build and parse)."""
    pending = [row for row in rows if row.id is None]
    if not pending or db.engine.dialect.name != "postgresql":
        return
    table = model.__tablename__
    ids = db.session.scalars(sa.text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
                                     "FROM generate_series(1, :n)"), {"n": len(pending)}).all()
    for row, row_id in zip(pending, ids):
        row.id = row_id


def _after_commit(media_jobs: list[tuple[int, str]], delivery_ids: list[int]) -> None:
    from portal.services import forwarding

    queue_downloads(media_jobs)
    forwarding.queue_deliveries(delivery_ids)


def _message_id(payload: dict[str, Any], key: str = "id") -> str | None:
    value = payload.get(key)
    if isinstance(value, dict):
        value = value.get("_serialized")
    return value if isinstance(value, str) and value else None


_MESSAGE_EVENTS = ("message", "message.any", "message.ack", "message.ack.group", "message.edited",
                   "message.reaction", "message.revoked")


def _target_ids(event: WebhookEvent) -> list[str]:
    payload = (event.payload or {}).get("payload") or {}
    if not isinstance(payload, dict):
        return []
    name = event.event
    if name in ("message", "message.any", "message.ack", "message.ack.group"):
        return [i for i in [_message_id(payload)] if i]
    if name == "message.reaction":
        reaction = payload.get("reaction") or {}
        return [i for i in [reaction.get("messageId") if isinstance(reaction, dict) else None] if i]
    if name == "message.edited":
        return [i for i in [payload.get("editedMessageId")] if isinstance(i, str)]
    if name == "message.revoked":
        before = payload.get("before") or {}
        ids = [_message_id(before) if isinstance(before, dict) else None, payload.get("revokedMessageId")]
        return [i for i in ids if isinstance(i, str) and i]
    return []


def _preload_messages(batch: _Batch, events: list[WebhookEvent]) -> None:
    keys = {(e.session_id, mid) for e in events if e.event in _MESSAGE_EVENTS and e.session_id
            for mid in _target_ids(e)}
    keys = {k for k in keys if k[1].count("_") >= 2}  # full serialized ids only; short ids are looked up later
    if not keys:
        return
    key_list = list(keys)
    for start in range(0, len(key_list), 1000):
        chunk = key_list[start:start + 1000]
        stmt = select(Message).where(tuple_(Message.session_id, Message.waha_message_id).in_(chunk))
        for message in db.session.scalars(stmt):
            batch.messages[(message.session_id, message.waha_message_id)] = message


def _when(event: WebhookEvent) -> datetime:
    stamp = (event.payload or {}).get("timestamp")
    if isinstance(stamp, (int, float)) and stamp > 0:
        try:
            return datetime.fromtimestamp(stamp / 1000, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            pass
    return event.received_at


def _apply(batch: _Batch, event: WebhookEvent, session: WahaSession) -> None:
    envelope = event.payload or {}
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        payload = {}
    name = event.event
    if name in ("message", "message.any"):
        _on_message(batch, event, session, payload)
    elif name in ("message.ack", "message.ack.group"):
        _on_ack(batch, event, session, payload)
    elif name == "session.status":
        _on_status(batch, session, payload, envelope)
    elif name == "message.reaction":
        _on_reaction(batch, event, session, payload)
    elif name == "message.edited":
        _on_edited(batch, event, session, payload)
    elif name == "message.revoked":
        _on_revoked(batch, event, session, payload)
    # Every other event is stored and forwarded only.


# ---------------------------------------------------------------------------------------------- messages


def _chat_of(message_id: str, payload: dict[str, Any], from_me: bool) -> str:
    parts = message_id.split("_", 2)
    if len(parts) == 3 and parts[0] in ("true", "false") and "@" in parts[1]:
        return parts[1][:128]
    # Engines differ on from/to for own messages; the id is the one rule, this is the fallback.
    other = payload.get("to") if from_me else payload.get("from")
    return str(other or payload.get("from") or "unknown")[:128]


def _from_me(message_id: str, payload: dict[str, Any]) -> bool:
    if "fromMe" in payload:
        return bool(payload.get("fromMe"))
    return message_id.startswith("true_")


def _find(batch: _Batch, session: WahaSession, message_id: str) -> Message | None:
    message = batch.messages.get((session.id, message_id))
    if message is not None or message_id.count("_") >= 2:
        return message
    # A short WhatsApp id (some engines' revoked/edited ids): match the tail of the serialized id, first among
    # this batch's own new rows (not written yet), then in the table.
    for (session_id, full_id), candidate in batch.messages.items():
        if session_id == session.id and full_id.endswith("_" + message_id):
            return candidate
    escaped = message_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    message = db.session.scalars(
        select(Message).where(Message.session_id == session.id,
                              Message.waha_message_id.like(f"%\\_{escaped}", escape="\\")).limit(1)).first()
    if message is not None:
        batch.messages[(session.id, message.waha_message_id or "")] = message
    return message


def _placeholder(batch: _Batch, session: WahaSession, message_id: str, payload: dict[str, Any]) -> Message | None:
    """A row for a message we heard of before its own event (an ack that overtook it); the message fills it."""
    if message_id.count("_") < 2:
        return None
    from_me = _from_me(message_id, payload)
    message = Message(
        tenant_id=session.tenant_id, session_id=session.id, direction="out" if from_me else "in",
        source="app" if from_me else "inbound", waha_message_id=message_id[:255],
        chat_id=_chat_of(message_id, payload, from_me), from_me=from_me, status="PENDING",
        extra={"placeholder": True},
    )
    db.session.add(message)
    batch.new_messages.append(message)
    batch.messages[(session.id, message.waha_message_id)] = message
    return message


def _advance(message: Message, status: str | None, when: datetime) -> None:
    """Move the delivery status forward only, and stamp when each step was reached."""
    if status not in STATUS_RANK:
        return
    column = _ACK_COLUMN.get(status)
    if column and getattr(message, column) is None:
        setattr(message, column, when)
    current = STATUS_RANK.get(message.status, -1)
    if message.status != "ERROR" and STATUS_RANK[status] > current:
        message.status = status


def _ack_status(payload: dict[str, Any]) -> str | None:
    ack = payload.get("ack")
    if isinstance(ack, int) and not isinstance(ack, bool):
        return ACK_NAMES.get(ack)
    name = payload.get("ackName")
    return name if name in STATUS_RANK else None


def _waha_details(payload: dict[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if payload.get("participant"):
        details["participant"] = str(payload["participant"])[:128]
    reply = payload.get("replyTo")
    if isinstance(reply, dict) and reply.get("id"):
        details["reply_to"] = str(reply["id"])[:255]
    if isinstance(payload.get("location"), dict):
        location = payload["location"]
        details["location"] = {k: location.get(k) for k in ("latitude", "longitude", "name", "address")
                               if location.get(k) is not None}
    if payload.get("vCards"):
        details["vcards"] = len(payload["vCards"]) if isinstance(payload["vCards"], list) else 1
    return details


def _on_message(batch: _Batch, event: WebhookEvent, session: WahaSession, payload: dict[str, Any]) -> None:
    message_id = _message_id(payload)
    if not message_id:
        raise _Skip("message event without an id")
    when = _when(event)
    from_me = _from_me(message_id, payload)
    message = batch.messages.get((session.id, message_id)) or _find(batch, session, message_id)
    fill = message is None or bool((message.extra or {}).get("placeholder"))
    if message is None:
        source = payload.get("source")
        message = Message(
            tenant_id=session.tenant_id, session_id=session.id, direction="out" if from_me else "in",
            source=("api" if source == "api" else "app") if from_me else "inbound",
            waha_message_id=message_id[:255], chat_id=_chat_of(message_id, payload, from_me), from_me=from_me,
            status="PENDING", extra={},
        )
        db.session.add(message)
        batch.new_messages.append(message)
        batch.messages[(session.id, message.waha_message_id)] = message
    timestamp = payload.get("timestamp")
    if isinstance(timestamp, (int, float)) and message.wa_timestamp is None:
        message.wa_timestamp = int(timestamp)
    if fill:
        extra = {k: v for k, v in (message.extra or {}).items() if k != "placeholder"}
        details = _waha_details(payload)
        if details:
            extra["waha"] = details
        message.extra = extra
        if from_me and payload.get("source") in ("api", "app"):
            message.source = payload["source"]
        body = payload.get("body")
        message.body = body if isinstance(body, str) else message.body
        if from_me and message.sent_at is None and isinstance(timestamp, (int, float)):
            message.sent_at = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    elif message.body is None and isinstance(payload.get("body"), str):
        message.body = payload["body"]
    if message.media is None:
        media, url = media_record(payload)
        if media is not None:
            message.media = media
            if url:
                batch.media.append((message, url))
    _advance(message, _ack_status(payload), when)


def _on_ack(batch: _Batch, event: WebhookEvent, session: WahaSession, payload: dict[str, Any]) -> None:
    message_id = _message_id(payload)
    if not message_id:
        raise _Skip("ack without a message id")
    status = _ack_status(payload)
    if status is None:
        return  # UNKNOWN acks (GOWS errors) carry no step to record
    message = _find(batch, session, message_id) or _placeholder(batch, session, message_id, payload)
    if message is None:
        raise _Skip(f"ack for an unknown short message id {message_id!r}")
    if event.event == "message.ack.group" and payload.get("participant"):
        # Per-participant receipts: the message moves forward as the first recipient gets there.
        extra = dict(message.extra or {})
        receipts = dict(extra.get("receipts") or {})
        participant = str(payload["participant"])[:128]
        if STATUS_RANK.get(status, -1) > STATUS_RANK.get(receipts.get(participant, ""), -1):
            receipts[participant] = status
            if len(receipts) <= 256:
                extra["receipts"] = receipts
                message.extra = extra
    _advance(message, status, _when(event))


def _target(batch: _Batch, session: WahaSession, ids: list[str], payload: dict[str, Any]) -> Message:
    for message_id in ids:
        message = _find(batch, session, message_id)
        if message is not None:
            return message
    for message_id in ids:
        message = _placeholder(batch, session, message_id, payload)
        if message is not None:
            return message
    raise _Skip("the message this event refers to is unknown")


def _on_reaction(batch: _Batch, event: WebhookEvent, session: WahaSession, payload: dict[str, Any]) -> None:
    reaction = payload.get("reaction")
    if not isinstance(reaction, dict) or not reaction.get("messageId"):
        raise _Skip("reaction without a message id")
    message = _target(batch, session, [str(reaction["messageId"])], {})
    sender = "me" if payload.get("fromMe") else str(payload.get("participant") or payload.get("from") or "unknown")
    reactions = dict(message.reactions or {})
    text = reaction.get("text") or ""
    if text:
        reactions[sender[:128]] = {"text": str(text)[:32], "at": _when(event).isoformat()}
    else:
        reactions.pop(sender[:128], None)
    message.reactions = reactions or None


def _on_edited(batch: _Batch, event: WebhookEvent, session: WahaSession, payload: dict[str, Any]) -> None:
    target = payload.get("editedMessageId")
    if not isinstance(target, str) or not target:
        raise _Skip("edit without editedMessageId")
    message = _target(batch, session, [target], {"fromMe": payload.get("fromMe")})
    extra = dict(message.extra or {})
    if message.body is not None and "original_body" not in extra:
        extra["original_body"] = message.body
        message.extra = extra
    if isinstance(payload.get("body"), str):
        message.body = payload["body"]
    message.edited_at = _when(event)


def _on_revoked(batch: _Batch, event: WebhookEvent, session: WahaSession, payload: dict[str, Any]) -> None:
    ids = _target_ids(event)
    if not ids:
        raise _Skip("revoke without a message id")
    before = payload.get("before") if isinstance(payload.get("before"), dict) else {}
    message = _target(batch, session, ids, before or {})
    message.revoked_at = _when(event)


def _on_status(batch: _Batch, session: WahaSession, payload: dict[str, Any], envelope: dict[str, Any]) -> None:
    from portal.services import attention
    from portal.services.sessions import apply_status

    status = payload.get("status")
    if not isinstance(status, str) or not status:
        raise _Skip("session.status without a status")
    me = envelope.get("me") if isinstance(envelope.get("me"), dict) else None
    previous_status, previous_me = session.status, session.me
    apply_status(session, status, me=me, actor=WAHA, source="webhook")
    notice = attention.evaluate(session, previous_status, previous_me)
    if notice is not None:
        batch.notices.append(notice)


# ============================================================================================== sweeper, replay


def sweep(older_than: int = 30) -> int:
    """Queue processing when events have waited longer than `older_than` seconds, and the download of media
    files pending as long (their job was lost, or Redis was down); returns how many events wait."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    # Events of a session deleted before they were processed have nobody to go to.
    db.session.execute(update(WebhookEvent).where(WebhookEvent.status == "pending", WebhookEvent.session_id.is_(None))
                       .values(status="ignored", error="session no longer exists", processed_at=utcnow()))
    waiting = db.session.scalar(select(sa.func.count()).select_from(WebhookEvent).where(
        WebhookEvent.status == "pending", WebhookEvent.received_at < cutoff)) or 0
    db.session.commit()
    if waiting:
        log.info("%d event(s) waited more than %d s; queueing processing", waiting, older_than)
        request_drain(force=True)
    try:
        requeue_pending(older_than)
    except Exception:
        db.session.rollback()
        log.warning("could not re-queue pending media", exc_info=True)
    return waiting


def replay_event(event_id: str) -> WebhookEvent:
    """Process a stored event again (after a fix); applying an event twice changes nothing the first did not."""
    event = db.session.scalar(select(WebhookEvent).where(
        sa.or_(WebhookEvent.event_id == event_id, WebhookEvent.id == (int(event_id) if event_id.isdigit() else -1))))
    if event is None:
        raise NotFound(f"No stored event {event_id!r}.", code="event_not_found")
    if event.session_id is None:
        raise Invalid("This event belongs to no session; there is nothing to apply it to.", code="event_ignored")
    event.status, event.attempts, event.error, event.processed_at = "pending", 0, None, None
    db.session.commit()
    request_drain(force=True)
    return event


# ============================================================================================== listing


def count_by_status() -> dict[str, int]:
    """Number of stored events per status (for the CLI and dashboards)."""
    rows = db.session.execute(select(WebhookEvent.status, sa.func.count()).group_by(WebhookEvent.status))
    return {status: count for status, count in rows}


def failed_events(limit: int = 50) -> Iterable[WebhookEvent]:
    """The newest events whose processing failed for good."""
    return db.session.scalars(select(WebhookEvent).where(WebhookEvent.status == "failed")
                              .order_by(WebhookEvent.id.desc()).limit(limit))


__all__ = [
    "DrainResult", "IngestResult", "MAX_BATCH_BYTES", "MAX_EVENT_BYTES", "count_by_status", "drain",
    "failed_events", "fetch_media", "forget_session_key", "ingest", "media_for_message", "parse_events",
    "process_batch", "replay_event", "request_drain", "signature_ok", "sweep",
]
