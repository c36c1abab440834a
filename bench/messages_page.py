"""Benchmark: a page of messages with 1,000,000 rows over 100 tenants, first page and 1,000 pages deep.

Loads 1,000,000 messages into PostgreSQL with generate_series (once; later runs reuse the data when the row
count matches, `--reload` forces a fresh load) and times `portal.services.messages.list_messages` in-process,
which is the server time of the API and the portal pages without HTTP:

  * the big tenant (150,000 messages in two sessions), the big session (100,000), and a typical tenant
  * the first page and the page 1,000 pages deep (keyset cursor after 49,950 rows), plus filtered variants

Baselines measured in the same run: a bare `SELECT 1` round trip through the same session, and the deep page
done the OFFSET way. The target is p95 under 50 ms; each line prints p95 / 50 ms as a ratio (< 1.00 is
within target) and the plan's index.

    .venv/bin/python bench/messages_page.py [--runs 200] [--reload]

Needs PostgreSQL and Redis as for the tests; uses BENCH_DATABASE_URL (default database portal_bench_messages,
created here) and Redis db 8.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/portal_bench_messages")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
TOTAL = 1_000_000
TENANTS = 100
BIG_SESSION_ROWS = 100_000  # tenant 1, session A
BIG_SECOND_ROWS = 50_000  # tenant 1, session B
PAGE = 50
DEEP_PAGES = 1_000
TARGET_MS = 50.0


def create_database() -> None:
    admin = sa.create_engine(DB_URL.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = DB_URL.rsplit("/", 1)[1]
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def make_app() -> Any:
    from portal import create_app
    from portal.config import environ_for_tests

    return create_app(environ_for_tests(DATABASE_URL=DB_URL, REDIS_URL=REDIS_URL, LOG_LEVEL="ERROR"))


def loaded(db: Any) -> bool:
    try:
        return db.session.execute(sa.text("SELECT count(*) FROM messages")).scalar() == TOTAL
    except sa.exc.ProgrammingError:
        db.session.rollback()
        return False


def load(db: Any) -> None:
    """Fresh schema from the real migration, 100 tenants with two sessions each, then 1,000,000 messages."""
    from flask_migrate import upgrade

    from portal.models import Tenant, WahaServer, WahaSession

    with db.engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    upgrade()
    server = WahaServer(name="bench", base_url="http://127.0.0.1:9", api_key="bench", capacity=1000)
    db.session.add(server)
    db.session.flush()
    for n in range(1, TENANTS + 1):
        tenant = Tenant(slug=f"t{n}", name=f"Tenant {n}")
        db.session.add(tenant)
        db.session.flush()
        for label in ("a", "b"):
            db.session.add(
                WahaSession(
                    id=f"t{n}-{label}",
                    tenant_id=tenant.id,
                    server_id=server.id,
                    name=f"Session {label}",
                    external_name=f"t{n}_{label}",
                    status="WORKING",
                    hmac_key="bench",
                )
            )
    db.session.commit()

    started = time.perf_counter()
    rest = TOTAL - BIG_SESSION_ROWS - BIG_SECOND_ROWS
    # Every row gets its own second, the tenants interleaved in time as real traffic would be.
    columns = (
        "tenant_id, session_id, direction, source, chat_id, from_me, body, status, metadata, created_at, updated_at"
    )
    row = """
        {tenant}, {session},
        CASE WHEN g % 3 = 0 THEN 'in' ELSE 'out' END, 'api',
        '4917' || lpad((g % 500)::text, 8, '0') || '@c.us', g % 3 <> 0,
        'message ' || g || ' ' || md5(g::text),
        (ARRAY['PENDING','SERVER','DEVICE','READ','ERROR'])[1 + g % 5], '{{}}'::jsonb,
        timestamptz '2026-01-01' + make_interval(secs => g), timestamptz '2026-01-01' + make_interval(secs => g)
    """
    statements = [
        # tenant 1: every 7th second in session a, every 14th in session b (spread over the whole period)
        (
            f"INSERT INTO messages ({columns}) SELECT {row.format(tenant=1, session=chr(39) + 't1-a' + chr(39))} "
            f"FROM generate_series(1, {BIG_SESSION_ROWS}) AS s(i), LATERAL (SELECT s.i * 7 AS g) AS x"
        ),
        (
            f"INSERT INTO messages ({columns}) SELECT {row.format(tenant=1, session=chr(39) + 't1-b' + chr(39))} "
            f"FROM generate_series(1, {BIG_SECOND_ROWS}) AS s(i), LATERAL (SELECT s.i * 14 + 3 AS g) AS x"
        ),
        (
            f"INSERT INTO messages ({columns}) SELECT "
            + row.format(
                tenant="2 + g % 99", session="'t' || (2 + g % 99) || CASE WHEN g % 2 = 0 THEN '-a' ELSE '-b' END"
            )
            + f" FROM generate_series(1, {rest}) AS g"
        ),
    ]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
        conn.execute(sa.text("ANALYZE"))
    print(f"loaded {TOTAL:,} messages in {time.perf_counter() - started:.1f} s")


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


def timed(call: Callable[[], Any], runs: int) -> list[float]:
    for _ in range(5):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def plan_index(db: Any, stmt_sql: str, params: dict) -> str:
    lines = [r[0] for r in db.session.execute(sa.text("EXPLAIN " + stmt_sql), params)]
    for line in lines:
        if " using " in line.lower():
            return line.strip().split(" on ")[0].split("using ")[-1].split(" Using ")[-1]
    return lines[0].strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--reload", action="store_true")
    args = parser.parse_args()

    create_database()
    app = make_app()
    from portal.extensions import db
    from portal.models import Message, Tenant
    from portal.services import messages

    with app.app_context():
        if args.reload or not loaded(db):
            load(db)
        else:
            print(f"reusing the {TOTAL:,} messages already in {DB_URL.rsplit('/', 1)[1]}")
        big = db.session.scalar(sa.select(Tenant).where(Tenant.slug == "t1"))
        typical = db.session.scalar(sa.select(Tenant).where(Tenant.slug == "t50"))
        counts = dict(
            db.session.execute(
                sa.text("SELECT tenant_id, count(*) FROM messages WHERE tenant_id IN (:a, :b) GROUP BY tenant_id"),
                {"a": big.id, "b": typical.id},
            ).all()
        )
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work on the box skews p95)")
        print(f"big tenant: {counts[big.id]:,} messages; typical tenant: {counts[typical.id]:,}; page size {PAGE}")

        def deep_cursor(pages: int = DEEP_PAGES, **where: Any) -> str:
            """The cursor a client holds after walking pages - 1 pages (row 49,950 in list order for 1,000)."""
            stmt = sa.select(Message).where(*(getattr(Message, k) == v for k, v in where.items()))
            stmt = stmt.order_by(Message.created_at.desc(), Message.id.desc()).offset(PAGE * (pages - 1) - 1)
            return messages.encode_cursor(db.session.scalars(stmt.limit(1)).one())

        def page(tenant: Tenant, **filters: Any) -> Callable[[], Any]:
            def call() -> Any:
                result = messages.list_messages(tenant, limit=PAGE, **filters)
                assert len(result.items) == PAGE, len(result.items)
                db.session.rollback()  # end the read transaction as a request would
                return result

            return call

        # Baselines.
        select_one = timed(lambda: (db.session.execute(sa.text("SELECT 1")).scalar(), db.session.rollback()), args.runs)
        offset_sql = (
            "SELECT * FROM messages WHERE tenant_id = :t ORDER BY created_at DESC, id DESC "
            f"OFFSET {PAGE * (DEEP_PAGES - 1)} LIMIT {PAGE + 1}"
        )
        offset_deep = timed(
            lambda: (db.session.execute(sa.text(offset_sql), {"t": big.id}).all(), db.session.rollback()),
            max(20, args.runs // 4),
        )
        base = p95(select_one)
        print(f"baseline SELECT 1 round trip: p95 {base:.2f} ms")
        print(f"baseline OFFSET {PAGE * (DEEP_PAGES - 1):,} on the big tenant: p95 {p95(offset_deep):.2f} ms")
        print()

        session_a = "t1-a"
        scenarios = [
            ("big tenant, first page", page(big)),
            ("big tenant, 1,000 pages deep", page(big, cursor=deep_cursor(tenant_id=big.id))),
            ("big session, first page", page(big, session_id=session_a)),
            (
                "big session, 1,000 pages deep",
                page(big, session_id=session_a, cursor=deep_cursor(tenant_id=big.id, session_id=session_a)),
            ),
            ("typical tenant, first page", page(typical)),
            ("typical session, first page", page(typical, session_id="t50-a")),
            # a third of the big tenant's messages are inbound: 500 pages deep is near the end of them
            (
                "big tenant, direction=in, 500 pages deep",
                page(big, direction="in", cursor=deep_cursor(500, tenant_id=big.id, direction="in")),
            ),
            ("big session, one chat, first page", page(big, session_id=session_a, chat_id="491700000007@c.us")),
            ("big tenant, status=READ, first page", page(big, status="READ")),
        ]
        # Search: a substring of the text. A common term is found while walking the index; a rare one means
        # reading the tenant's rows (no trigram index), so it is reported beside the page target, not in it,
        # as is the conversation list (it counts every message of the session).
        searches = [
            ("big tenant, q common (~1 in 140 rows)", big, "abc"),
            ("big tenant, q rare (~1 in 600,000 rows)", big, "abcdef"),
            ("typical tenant, q rare", typical, "abcdef"),
        ]
        print(f"{'scenario':48} {'p50 ms':>8} {'p95 ms':>8} {'p95/50ms':>9} {'x SELECT 1':>11}")
        worst = 0.0
        for label, call in scenarios:
            samples = timed(call, args.runs)
            value = p95(samples)
            worst = max(worst, value)
            print(
                f"{label:48} {statistics.median(samples):8.2f} {value:8.2f} {value / TARGET_MS:9.2f} "
                f"{value / base:11.1f}"
            )
        print()
        for label, tenant, term in searches:

            def search(tenant: Tenant = tenant, term: str = term) -> None:
                messages.list_messages(tenant, limit=PAGE, q=term)
                db.session.rollback()

            samples = timed(search, max(20, args.runs // 4))
            value = p95(samples)
            print(
                f"{label:48} {statistics.median(samples):8.2f} {value:8.2f} {value / TARGET_MS:9.2f} "
                f"{value / base:11.1f}"
            )
        for label, tenant, session_key in (
            ("big session, conversations (list_chats)", big, session_a),
            ("typical session, conversations (list_chats)", typical, "t50-a"),
        ):

            def chats(tenant: Tenant = tenant, session_key: str = session_key) -> None:
                messages.list_chats(tenant, session_key)
                db.session.rollback()

            samples = timed(chats, max(20, args.runs // 4))
            value = p95(samples)
            print(
                f"{label:48} {statistics.median(samples):8.2f} {value:8.2f} {value / TARGET_MS:9.2f} "
                f"{value / base:11.1f}"
            )
        keyset_deep = p95(timed(page(big, cursor=deep_cursor(tenant_id=big.id)), args.runs))
        print()
        print(
            f"worst page p95 {worst:.2f} ms = {worst / TARGET_MS:.2f} of the 50 ms target "
            f"({'within' if worst < TARGET_MS else 'OVER'} target)"
        )
        print(f"deep page: OFFSET p95 / keyset p95 = {p95(offset_deep) / keyset_deep:.1f}x")

        print()
        print("plans (index that serves each query shape):")
        shapes = {
            "tenant": (
                "SELECT id FROM messages WHERE tenant_id = :t AND (created_at, id) < (:c, :i) "
                "ORDER BY created_at DESC, id DESC LIMIT 51"
            ),
            "session": (
                "SELECT id FROM messages WHERE session_id = :s AND (created_at, id) < "
                "(:c, :i) ORDER BY created_at DESC, id DESC LIMIT 51"
            ),
            "session+chat": (
                "SELECT id FROM messages WHERE session_id = :s AND chat_id = :chat "
                "ORDER BY created_at DESC, id DESC LIMIT 51"
            ),
        }
        params = {"t": big.id, "s": session_a, "c": "2026-06-01", "i": 10**9, "chat": "491700000007@c.us"}
        for name, sql in shapes.items():
            print(f"  {name:14} {plan_index(db, sql, params)}")
        db.session.rollback()


if __name__ == "__main__":
    main()
