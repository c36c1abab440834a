"""Writing a request's events into `webhook_events` (repeats skipped) and committing them.

On PostgreSQL a single event goes through the group-commit writer (`_GroupWriter`, with its own autocommit
connection: requests that arrive while an insert is in flight share the next one), an array is one statement on
an autocommit engine; on SQLite (the embedded default) the ORM inserts in one transaction.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import WebhookEvent, rowcount, utcnow

if TYPE_CHECKING:
    from portal.services.events.intake import _Incoming

_ingest_engines: dict[str, sa.Engine] = {}
_ingest_lock = threading.Lock()


_PG_COLUMNS = "(event_id, tenant_id, session_id, session_name, event, payload, raw, status, attempts, received_at)"
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
                engine = sa.create_engine(
                    url,
                    isolation_level="AUTOCOMMIT",
                    pool_pre_ping=False,
                    pool_reset_on_return=None,
                    pool_size=4,
                    max_overflow=12,
                )
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
            group: list[_Pending] = []
            rows = 0
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


# PostgreSQL: no ON CONFLICT clause. The table is partitioned by received_at, so event ids are kept unique by
# webhook_event_keys: a trigger skips a row whose event id was seen before (RETURNING leaves it out), whatever
# month the first one was received in (migration 0011, docs/architecture.md "Partitioned tables").


def _insert_rows(params: list[tuple]) -> set[str]:
    sql = (
        f"INSERT INTO webhook_events {_PG_COLUMNS} VALUES " + ", ".join([_PG_ROW] * len(params)) + " RETURNING event_id"
    )
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
    "RETURNING event_id"
)


def _store(batch: _Incoming, session_id: str | None, tenant_id: int | None, status: str) -> int:
    """Insert the events (repeats skipped) and commit; returns how many rows are new."""
    ids = batch.event_ids()
    if db.engine.dialect.name == "postgresql":
        try:
            if batch.is_array:
                # A batch is already a group: one statement, PostgreSQL splits the array it parses anyway.
                return len(_insert_array(ids, batch.text(), batch.raws, session_id, tenant_id, status))
            item = batch.items[0]
            row = (
                ids[0],
                tenant_id,
                session_id,
                str(item.get("session") or "")[:64] or None,
                item["event"][:64],
                batch.text(),
                batch.raws[0],
                status,
            )
            return len(_writer.write([row]))
        except psycopg.errors.ForeignKeyViolation as exc:
            # the same error whatever the database, for the caller
            raise IntegrityError("insert webhook_events", None, exc) from exc
    # SQLite (embedded default): the ORM path, one transaction.
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    now = utcnow()
    values = [
        {
            "event_id": event_id,
            "tenant_id": tenant_id,
            "session_id": session_id,
            "session_name": str(item.get("session") or "")[:64] or None,
            "event": item["event"][:64],
            "payload": item,
            "raw": raw,
            "status": status,
            "attempts": 0,
            "received_at": now,
        }
        for event_id, item, raw in zip(ids, batch.items, batch.raws, strict=True)
    ]
    result = db.session.execute(
        sqlite_insert(WebhookEvent).values(values).on_conflict_do_nothing(index_elements=["event_id"])
    )
    db.session.commit()
    return max(rowcount(result), 0)


def _insert_array(
    ids: list[str], body: str, raws: list[str | None], session_id: str | None, tenant_id: int | None, status: str
) -> set[str]:
    for attempt in (1, 2):
        try:
            with _ingest_engine().connect() as conn, _psycopg(conn).cursor() as cursor:
                cursor.execute(_PG_INSERT_ARRAY, (ids, tenant_id, session_id, raws, status, body))
                return {row[0] for row in cursor.fetchall()}
        except psycopg.OperationalError:
            if attempt == 2:
                raise
            _ingest_engine().dispose()
    raise AssertionError("unreachable")


def _psycopg(conn: sa.Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under an ingest engine's connection."""
    driver = conn.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError(f"the ingest engine runs on psycopg, not on {type(driver).__name__}")
    return driver


def _after_fork() -> None:
    global _ingest_lock, _writer
    _writer = _GroupWriter()
    _writer_conn[0] = None  # the parent's socket stays the parent's
    _ingest_lock = threading.Lock()
    _ingest_engines.clear()


os.register_at_fork(after_in_child=_after_fork)
