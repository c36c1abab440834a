"""Benchmark: the statements of the send path and of event ingest on plain tables against monthly partitions.

Two databases are built in one run: one at the migration before 0011 (plain `messages` and `webhook_events` with their
unique constraints) and one at the head (partitioned by month, global keys in key tables kept by triggers), each
with the same rows spread over the last four months. The statements whose cost the partitioning changes are
then timed in alternating blocks (plain, partitioned, plain, ...) on one autocommit connection each, so drift
of the machine hits both alike:

  insert   the send's row: INSERT INTO messages ... RETURNING id, with an Idempotency-Key and a WhatsApp id
  sent     the UPDATE after WAHA accepted under the predicted id (by id; partitioned: and the row's created_at,
           as the send path does, so one month is read)
  bykey    the Idempotency-Key lookup (SELECT ... WHERE tenant_id = ... AND idempotency_key = ...; partitioned:
           the month from message_idempotency_keys, as the send path does)
  event    the receiver's single-event INSERT (plain: ON CONFLICT (event_id) DO NOTHING; partitioned: the
           trigger skips repeats) RETURNING event_id
  repeat   the same event again (a WAHA retry): stored 0 rows

Prints the median and p95 per statement and the ratio partitioned / plain of the medians (1.00 = no change).
Each commit waits for its WAL flush, which on a busy machine dominates and varies; `--no-flush-wait` turns that
off on both sides to compare the statements' own work.

    .venv/bin/python bench/partitions.py [--n 400] [--blocks 6] [--rows 200000] [--no-flush-wait]

Uses BENCH_PARTITIONS_DATABASE_URL (default database portal_bench_partitions; `_plain` and `_part` databases are
created and reset next to it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE_URL = os.environ.get(
    "BENCH_PARTITIONS_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/portal_bench_partitions"
)
STATEMENTS = ("insert", "sent", "bykey", "event", "repeat")


def _build(url: sa.URL, revision: str | None, rows: int) -> tuple[int, str]:
    """A fresh database at `revision` (None: the head) with `rows` messages and events over four months."""
    from flask_migrate import upgrade

    from portal import create_app
    from portal.config import environ_for_tests
    from portal.extensions import db
    from portal.models import Tenant, WahaServer, WahaSession, utcnow
    from portal.services import partitions

    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    app = create_app(environ_for_tests(DATABASE_URL=url.render_as_string(hide_password=False)))
    with app.app_context():
        if revision:
            upgrade(revision=revision)
        else:
            upgrade()
            partitions.ensure(now=utcnow() - timedelta(days=120), ahead=6)
        tenant = Tenant(slug="bench", name="Bench")
        db.session.add(tenant)
        db.session.flush()
        server = WahaServer(name="bench", base_url="http://127.0.0.1:9", api_key="k")
        db.session.add(server)
        db.session.flush()
        session = WahaSession(
            id=str(uuid.uuid4()),
            tenant_id=tenant.id,
            server_id=server.id,
            name="bench",
            external_name="bench",
            hmac_key="k",
            config={},
        )
        db.session.add(session)
        db.session.commit()
        ids = (tenant.id, session.id)
        params = {"t": ids[0], "s": ids[1], "n": rows}
        db.session.execute(
            sa.text(
                "INSERT INTO messages (tenant_id, session_id, direction, source, waha_message_id, chat_id, from_me, "
                "body, status, idempotency_key, metadata, created_at, updated_at) "
                "SELECT :t, :s, 'out', 'api', 'true_1@c.us_seed' || g, (g % 5000) || '@c.us', true, 'seed', 'READ', "
                "CASE WHEN g % 2 = 0 THEN 'seed-' || g END, '{}', now() - (g * interval '100 days' / :n), now() "
                "FROM generate_series(1, :n) g"
            ),
            params,
        )
        db.session.execute(
            sa.text(
                "INSERT INTO webhook_events (event_id, tenant_id, session_id, event, payload, status, attempts, "
                "received_at) SELECT 'seed-' || g, :t, :s, 'message', '{}', 'done', 0, "
                "now() - (g * interval '100 days' / :n) FROM generate_series(1, :n) g"
            ),
            params,
        )
        db.session.commit()
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
        db.session.remove()
        db.engine.dispose()
    return ids


def _before_partitions() -> str:
    """The revision just before the partitioning migration: the plain tables as they were."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    down = ScriptDirectory.from_config(config).get_revision("0011").down_revision
    assert isinstance(down, str)
    return down


def _statements(partitioned: bool) -> dict[str, str]:
    from portal.services.events.writer import _PG_COLUMNS, _PG_ROW

    conflict = "" if partitioned else " ON CONFLICT (event_id) DO NOTHING"
    return {
        "insert": (
            "INSERT INTO messages (tenant_id, session_id, direction, source, waha_message_id, chat_id, from_me, body, "
            "status, idempotency_key, metadata, send_state, created_at, updated_at) VALUES "
            "(%s, %s, 'out', 'api', %s, '491701234567@c.us', true, 'hello', 'PENDING', %s, '{}', 'sending', now(), "
            "now()) RETURNING id, created_at"
        ),
        # as services.messages.send_sql._sent_update: partitioned, the row's created_at narrows it to its month
        "sent": (
            "UPDATE messages SET sent_at = now(), updated_at = now(), send_state = NULL "
            "WHERE id = %s" + (" AND created_at = %s" if partitioned else "") + " RETURNING waha_message_id, status"
        ),
        # as services.messages.sending._by_key: partitioned, the key table gives the row's month
        "bykey": "SELECT id, session_id, chat_id FROM messages WHERE tenant_id = %s AND idempotency_key = %s"
        + (
            " AND created_at = (SELECT created_at FROM message_idempotency_keys WHERE tenant_id = %s "
            "AND idempotency_key = %s)"
            if partitioned
            else ""
        ),
        "event": f"INSERT INTO webhook_events {_PG_COLUMNS} VALUES {_PG_ROW}{conflict} RETURNING event_id",
    }


def _block(conn: psycopg.Connection, sql: dict[str, str], ids: tuple[int, str], n: int, out: dict) -> None:
    tenant_id, session_id = ids
    partitioned = "created_at = %s" in sql["sent"]
    payload = '{"event":"message","payload":{"body":"hi"}}'
    for _ in range(n):
        token = uuid.uuid4().hex
        started = time.perf_counter()
        inserted = conn.execute(sql["insert"], (tenant_id, session_id, f"true_x_{token}", f"k-{token}")).fetchone()
        out["insert"].append(time.perf_counter() - started)
        sent_params = (inserted[0],) + ((inserted[1],) if partitioned else ())
        started = time.perf_counter()
        assert conn.execute(sql["sent"], sent_params).fetchone() is not None
        out["sent"].append(time.perf_counter() - started)
        key_params = (tenant_id, f"k-{token}") * (2 if partitioned else 1)
        started = time.perf_counter()
        assert len(conn.execute(sql["bykey"], key_params).fetchall()) == 1
        out["bykey"].append(time.perf_counter() - started)
        row = (f"e-{token}", tenant_id, session_id, "bench", "message", payload, None, "pending")
        started = time.perf_counter()
        assert len(conn.execute(sql["event"], row).fetchall()) == 1
        out["event"].append(time.perf_counter() - started)
        started = time.perf_counter()
        assert conn.execute(sql["event"], row).fetchall() == []
        out["repeat"].append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400, help="rounds of the five statements per block")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200_000, help="messages and events already stored")
    parser.add_argument(
        "--no-flush-wait",
        action="store_true",
        help="synchronous_commit off on both sides: the statements' own cost without each commit's WAL flush",
    )
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f}")
    base = sa.make_url(BASE_URL)
    setups = {}
    for name, revision in (("plain", _before_partitions()), ("partitioned", None)):
        url = base.set(database=f"{base.database}_{'plain' if revision else 'part'}")
        started = time.perf_counter()
        setups[name] = (url, _build(url, revision, args.rows))
        print(f"{name}: built with {args.rows} messages and events in {time.perf_counter() - started:.1f} s")
    timings: dict[str, dict[str, list[float]]] = {name: {s: [] for s in STATEMENTS} for name in setups}
    connections = {
        name: psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True)
        for name, (url, _ids) in setups.items()
    }
    if args.no_flush_wait:
        for conn in connections.values():
            conn.execute("SET synchronous_commit = off")
    try:
        for name, (_url, ids) in setups.items():  # warm-up: caches and prepared statements
            _block(connections[name], _statements(name == "partitioned"), ids, 50, {s: [] for s in STATEMENTS})
        for block in range(args.blocks):
            order = list(setups.items())
            for name, (_url, ids) in order if block % 2 == 0 else reversed(order):  # neither side always first
                _block(connections[name], _statements(name == "partitioned"), ids, args.n, timings[name])
    finally:
        for conn in connections.values():
            conn.close()
    print(f"{'statement':<10}{'plain p50':>12}{'p95':>10}{'part p50':>12}{'p95':>10}{'ratio p50':>12}")
    for statement in STATEMENTS:
        plain = sorted(timings["plain"][statement])
        part = sorted(timings["partitioned"][statement])

        def p95(values: list[float]) -> float:
            return values[int(len(values) * 0.95)] * 1000

        ratio = statistics.median(part) / statistics.median(plain)
        print(
            f"{statement:<10}{statistics.median(plain) * 1000:>10.3f}ms{p95(plain):>8.3f}ms"
            f"{statistics.median(part) * 1000:>10.3f}ms{p95(part):>8.3f}ms{ratio:>12.2f}"
        )


if __name__ == "__main__":
    main()
