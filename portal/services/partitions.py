"""Monthly partitions of `messages` and `webhook_events` on PostgreSQL: created ahead, listed, dropped by retention.

The tables are partitioned by RANGE on their insert time (messages.created_at, webhook_events.received_at), one
partition per calendar month in UTC, named `<table>_pYYYYMM` (migration 0011). `ensure()` creates this month's
and the next AHEAD_MONTHS' partitions when missing (scheduler job `partitions-ensure`, and the start of
`flask scheduler` / the embedded runner); there is no DEFAULT partition, so an insert into a month without a
partition fails: keeping months ahead is what prevents that. `drop()` takes a partition out whole (retention),
clearing what pointed at its rows first. SQLite (the embedded default) has plain tables: every function here is a
no-op there. See docs/architecture.md ("Partitioned tables") and docs/deploy.md ("Partition maintenance").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa

from portal.extensions import db
from portal.models import utcnow

log = logging.getLogger(__name__)

# table -> partition key column
TABLES = {"messages": "created_at", "webhook_events": "received_at"}
AHEAD_MONTHS = 2
LOCK_KEY = 5511  # advisory lock: one process creates or drops partitions at a time
LOCK_TIMEOUT = "5s"  # creating or detaching a partition locks the parent table: never queue behind long work

# The key table of Idempotency-Keys (migration 0011, PostgreSQL only; not a model: SQLite has no such table). A
# lookup by key reads the message's created_at here first, so that it reads the one partition holding the row.
IDEMPOTENCY_KEYS = sa.table(
    "message_idempotency_keys", sa.column("tenant_id"), sa.column("idempotency_key"), sa.column("created_at")
)

_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    lower: datetime
    upper: datetime
    rows: int  # the planner's estimate (pg_class.reltuples), -1 when never analysed


def month_start(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return datetime(value.year, value.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y%m}"


def enabled() -> bool:
    """True when the database partitions the tables (PostgreSQL, migrated to 0011 or later)."""
    if db.engine.dialect.name != "postgresql":
        return False
    with db.engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text("SELECT count(*) FROM pg_class WHERE relkind = 'p' AND relname = ANY(:t)"),
                {"t": list(TABLES)},
            ).scalar()
        )


def partitions(conn: sa.Connection, table: str) -> list[Partition]:
    """The table's partitions, oldest first."""
    rows = conn.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass)"
        ),
        {"t": table},
    ).all()
    found = []
    for name, bound, estimate in rows:
        match = _BOUNDS.search(bound or "")
        if match is None:
            continue  # a DEFAULT partition (none is created), listed by status() through its name only
        lower, upper = (datetime.fromisoformat(value).astimezone(UTC) for value in match.groups())
        found.append(Partition(table, name, lower, upper, int(estimate)))
    return sorted(found, key=lambda p: p.lower)


def ensure(now: datetime | None = None, ahead: int = AHEAD_MONTHS) -> list[str]:
    """Create the partitions of this month and the next `ahead` months that are missing; returns their names.

    Idempotent and cheap when nothing is missing (one catalog query per table). Runs under an advisory lock so
    that two processes starting at once do not race; a partition is created with a lock timeout, and one that
    could not be created now is created by the next run (months ahead leave time for that)."""
    if not enabled():
        return []
    month = month_start(now or utcnow())
    months = [month]
    for _ in range(ahead):
        months.append(next_month(months[-1]))
    created: list[str] = []
    with db.engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        for table in TABLES:
            have = {p.lower for p in partitions(conn, table)}
            for lower in months:
                if lower in have:
                    continue
                name = partition_name(table, lower)
                conn.execute(
                    sa.text(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
                        f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{next_month(lower).isoformat()}')"
                    )
                )
                created.append(name)
    if created:
        log.info("partitions created: %s", ", ".join(created))
    return created


def ensure_quietly() -> list[str]:
    """ensure() for start-up paths: a failure is logged, never raised (the scheduled job tries again)."""
    try:
        return ensure()
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not create the partitions ahead: %s", exc)
        return []


def drop(partition: Partition) -> None:
    """Detach and drop one partition in one transaction, after clearing what pointed at its rows.

    What the foreign keys and the delete triggers would have done for row deletes is done here in bulk: the key
    rows of the partition's messages or events go, chats showing one of its messages as their last one and
    replies quoting one of them get NULL. The caller deletes the stored files of its messages after it."""
    lower, upper = partition.lower, partition.upper
    bounds = {"lo": lower, "hi": upper}
    with db.engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        if partition.table == "messages":
            conn.execute(
                sa.text(
                    "UPDATE chats SET last_message_id = NULL "
                    f"WHERE last_message_id IN (SELECT id FROM {partition.name})"
                )
            )
            conn.execute(
                sa.text(
                    f"UPDATE messages SET reply_to_id = NULL WHERE reply_to_id IN (SELECT id FROM {partition.name}) "
                    "AND created_at >= :hi"
                ),
                bounds,
            )
            for key_table in ("message_idempotency_keys", "message_waha_ids"):
                conn.execute(sa.text(f"DELETE FROM {key_table} WHERE created_at >= :lo AND created_at < :hi"), bounds)
        else:
            conn.execute(
                sa.text("DELETE FROM webhook_event_keys WHERE received_at >= :lo AND received_at < :hi"), bounds
            )
        conn.execute(sa.text(f"ALTER TABLE {partition.table} DETACH PARTITION {partition.name}"))
        conn.execute(sa.text(f"DROP TABLE {partition.name}"))
    log.info("partition %s dropped (%s to %s)", partition.name, lower.date(), upper.date())


def status() -> list[dict[str, Any]]:
    """Each partitioned table's partitions, and the months of the window ensure() keeps that are missing."""
    if not enabled():
        return []
    month = month_start(utcnow())
    wanted = [month]
    for _ in range(AHEAD_MONTHS):
        wanted.append(next_month(wanted[-1]))
    report = []
    with db.engine.connect() as conn:
        for table in TABLES:
            found = partitions(conn, table)
            have = {p.lower for p in found}
            report.append(
                {
                    "table": table,
                    "partitions": [
                        (p.name, p.lower.date().isoformat(), p.upper.date().isoformat(), p.rows) for p in found
                    ],
                    "missing": [partition_name(table, m) for m in wanted if m not in have],
                }
            )
    return report


def _any_row(conn: sa.Connection, partition: Partition, condition: str, params: dict[str, object]) -> bool:
    key = TABLES[partition.table]
    sql = f"SELECT 1 FROM {partition.table} WHERE {key} >= :lo AND {key} < :hi AND ({condition}) LIMIT 1"
    return conn.execute(sa.text(sql), {"lo": partition.lower, "hi": partition.upper, **params}).first() is not None


def _dropped_now(partition: Partition) -> bool:
    """drop(), or False when the locks it needs could not be had now: its lock timeout ran out, or PostgreSQL
    chose it as the victim of a deadlock (a DROP takes the parent's and the referenced tables' locks after work
    that may hold them in the other order). Nothing of it is left done; the next run drops the partition."""
    try:
        drop(partition)
    except sa.exc.OperationalError as exc:
        if not isinstance(exc.orig, (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected)):
            raise
        log.warning("partition %s not dropped now (%s); the next run drops it", partition.name, type(exc.orig).__name__)
        return False
    return True


def prune(now: datetime, message_days: dict[int, int], event_days: dict[int, int], unowned_days: int) -> dict[str, int]:
    """Retention by whole months: a partition goes once no row in it is still kept.

    `message_days` / `event_days` map each tenant to its retention in days. A partition is dropped when every row
    in it is past its tenant's retention (events: and none is still pending, and events of no tenant are past
    `unowned_days`). Inside a partition that must stay, the rows of tenants whose retention has passed the whole
    month are deleted with one statement (a tenant with a shorter retention than others sharing the month). A row
    therefore lives at least its retention and at most about a month longer. Returns the counts."""
    from portal.services.media_files import delete_files

    counts = {"messages": 0, "media_files": 0, "events": 0, "partitions_dropped": 0}
    for table, days in (("messages", message_days), ("webhook_events", event_days)):
        events = table == "webhook_events"
        with db.engine.connect() as conn:
            found = partitions(conn, table)
        for partition in found:
            expired = [t for t, d in days.items() if partition.upper <= now - timedelta(days=d)]
            unowned_expired = events and partition.upper <= now - timedelta(days=unowned_days)
            if not expired and not unowned_expired:
                continue
            params: dict[str, object] = {"kept": [t for t in days if t not in expired], "expired": expired}
            keep = "tenant_id = ANY(:kept)"
            if events:
                keep += " OR status = 'pending'" + ("" if unowned_expired else " OR tenant_id IS NULL")
            with db.engine.connect() as conn:
                holds = _any_row(conn, partition, keep, params)
            counted = "events" if events else "messages"
            if not holds:
                rows, files = _contents(partition)
                if not _dropped_now(partition):
                    continue  # the next run drops it
                counts[counted] += rows
                counts["partitions_dropped"] += 1
            else:
                gone = "(tenant_id = ANY(:expired)" + (" OR tenant_id IS NULL)" if unowned_expired else ")")
                if events:
                    gone += " AND status <> 'pending'"
                rows, files = _delete_rows(partition, gone, params)
                counts[counted] += rows
            # after the commit: a row never names a deleted file (services.media_files)
            counts["media_files"] += delete_files(files)
    return counts


def _contents(partition: Partition) -> tuple[int, list[str]]:
    """How many rows the partition holds, and the keys of its messages' stored files."""
    with db.engine.connect() as conn:
        if partition.table != "messages":
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {partition.name}")).scalar_one()), []
        keys = conn.execute(sa.text(f"SELECT media ->> 'key' FROM {partition.name}")).scalars().all()
    return len(keys), [str(key) for key in keys if key]


def _delete_rows(partition: Partition, gone: str, params: dict[str, object]) -> tuple[int, list[str]]:
    """Delete the rows matching `gone` inside one partition, through the parent table so that the delete triggers
    free their keys and unlink chats and replies; how many went, and the keys of their stored files."""
    key = TABLES[partition.table]
    where = f"{key} >= :lo AND {key} < :hi AND {gone}"
    values = {"lo": partition.lower, "hi": partition.upper, "expired": params["expired"]}
    returning = " RETURNING media ->> 'key'" if partition.table == "messages" else " RETURNING NULL"
    with db.engine.begin() as conn:
        keys = conn.execute(sa.text(f"DELETE FROM {partition.table} WHERE {where}{returning}"), values).scalars().all()
    return len(keys), [str(k) for k in keys if k]


# What migration 0011 changes on PostgreSQL only, that the models (shared with SQLite) do not describe: the
# partitions themselves, the key tables, the unique constraints they replace (and the plain indexes left in
# their place) and the foreign keys into the partitioned tables. Alembic's comparison skips these.
_PARTITION = re.compile(r"^(messages|webhook_events)_p\d{6}$")
_POSTGRESQL_ONLY_TABLES = {"message_idempotency_keys", "message_waha_ids", "webhook_event_keys"}
_POSTGRESQL_ONLY_NAMES = {
    "uq_messages_session_id_waha_message_id",
    "uq_messages_tenant_id_idempotency_key",
    "uq_webhook_events_event_id",
    "ix_messages_session_waha_id",
    "ix_messages_tenant_idempotency",
    "ix_webhook_events_event_id",
    "fk_chats_last_message_id_messages",
    "fk_messages_reply_to_id_messages",
    "fk_webhook_deliveries_webhook_event_id_webhook_events",
}


def include_in_comparison(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic `include_object` hook (migrations/env.py and the models/migration agreement test)."""
    if type_ == "table" and name is not None and (_PARTITION.match(name) or name in _POSTGRESQL_ONLY_TABLES):
        return False
    return not (type_ in ("unique_constraint", "index", "foreign_key_constraint") and name in _POSTGRESQL_ONLY_NAMES)
