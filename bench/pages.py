"""Benchmark: the portal's list pages for one tenant with 10,000, 100,000 and 1,000,000 messages.

For each size the data sits in a database of its own (loaded once with generate_series, about 3 minutes for the
largest; later runs reuse it and only move the day's rows to today). Each size has one tenant with N messages over
100 days (N/100 of them today, spread from midnight to the moment of measuring; a third inbound, 1 in 50 outbound
failed), N audit events and N webhook delivery attempts (1 in 50 failed, then retried), plus a second tenant with
a tenth of that, so that pages show they read only their tenant's rows. The dashboard's counts of the day are
checked against the table.

Each page is requested through the Flask test client as a signed-in owner (the whole request in-process: session,
permissions, queries, template; no HTTP) and timed:

  * message log: the newest page, and a page in the middle of the log (keyset cursor)
  * text search: a common word (~1 message in 8) and a rare word (5 messages at every size)
  * dashboard, audit log (newest and a middle page), webhook deliveries (newest and a middle page)

Printed per size and page: p50 and p95 (ms) with the target beside it (p95 < 20 ms), and the growth of p95 from
the smallest size (target < 1.5x from 10k to 1M); the baseline is GET /healthz in the same run. The message log
also prints the app's CPU time per page (CPU time of the thread inside the portal's WSGI app, so neither
PostgreSQL's work nor the test client's is in it; target <= 4 ms) and the part of it spent rendering templates.
`--explain` prints each page's query plans.

    .venv/bin/python bench/pages.py [--sizes 10000,100000,1000000] [--runs 100] [--reload] [--explain]

Needs PostgreSQL and Redis as for the tests; databases portal_pages_bench_<size> (created here;
BENCH_PAGES_DATABASE_URL names the server and the name prefix) and Redis db 8 (BENCH_REDIS_URL).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_PREFIX = os.environ.get(
    "BENCH_PAGES_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/portal_pages_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
SIZES = (10_000, 100_000, 1_000_000)
TARGET_MS = 20.0
GROWTH_TARGET = 1.5
CPU_TARGET_MS = 4.0
DAYS = 100
EMAIL = "owner@bench.example.com"
PASSWORD = "bench-password-1"
RARE_WORD = "kumquat"  # in 5 messages of the tenant at every size
COMMON_WORD = "order"  # in about 1 message in 8
RARE_ROWS = 5
VOCABULARY = [
    "hello",
    "thanks",
    "order",
    "delivery",
    "today",
    "tomorrow",
    "please",
    "confirm",
    "payment",
    "invoice",
    "address",
    "price",
    "available",
    "size",
    "colour",
    "shipping",
    "receipt",
    "refund",
    "meeting",
    "morning",
    "evening",
    "sorry",
    "great",
    "photo",
    "call",
    "later",
    "week",
    "weekend",
    "store",
    "open",
    "closed",
    "ticket",
    "number",
    "customer",
    "support",
    "account",
    "password",
    "update",
    "booking",
    "table",
    "friday",
    "monday",
    "question",
    "answer",
    "discount",
    "voucher",
    "product",
    "stock",
    "return",
    "parcel",
    "tracking",
    "driver",
    "arrived",
    "waiting",
    "minutes",
]


def url_for_size(size: int) -> str:
    return f"{DB_PREFIX}_{size}"


def create_database(url: str) -> None:
    admin = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def make_app(url: str) -> Any:
    from portal import create_app
    from portal.config import environ_for_tests

    return create_app(environ_for_tests(DATABASE_URL=url, REDIS_URL=REDIS_URL, LOG_LEVEL="ERROR"))


# ---- data ------------------------------------------------------------------------------------------------------


def loaded(db: Any, size: int) -> bool:
    try:
        count = db.session.execute(
            sa.text("SELECT count(*) FROM messages m JOIN tenants t ON t.id = m.tenant_id WHERE t.slug = 'bench'")
        ).scalar()
    except sa.exc.ProgrammingError:
        db.session.rollback()
        return False
    db.session.rollback()  # a reload drops the schema from another connection: hold no lock on it
    return count == size


def _messages_sql(tenant: int, size: int, sessions: tuple[str, str]) -> str:
    """N messages: N - N/100 over the DAYS - 1 days before today, N/100 today (moved to today on reuse)."""
    today = size // 100
    history = size - today
    words = "ARRAY[" + ",".join(f"'{w}'" for w in VOCABULARY) + "]"
    picks = " || ' ' || ".join(f"v.w[1 + (g * {k} + {k * k}) % {len(VOCABULARY)}]" for k in (7, 11, 13, 17, 19, 23))
    rare_every = size // RARE_ROWS
    return f"""
        INSERT INTO messages (tenant_id, session_id, direction, source, chat_id, from_me, body, status, metadata,
                              created_at, updated_at)
        SELECT {tenant},
               CASE WHEN g % 2 = 0 THEN '{sessions[0]}' ELSE '{sessions[1]}' END,
               CASE WHEN g % 3 = 0 THEN 'in' ELSE 'out' END, 'api',
               '4917' || lpad((g % 500)::text, 8, '0') || '@c.us', g % 3 <> 0,
               {picks} || ' #' || g || CASE WHEN g % {rare_every} = 7 THEN ' {RARE_WORD}' ELSE '' END,
               CASE WHEN g % 3 = 0 THEN 'READ' WHEN g % 50 = 1 THEN 'ERROR'
                    ELSE (ARRAY['SERVER','DEVICE','READ'])[1 + g % 3] END,
               '{{}}'::jsonb, at, at
        FROM generate_series(1, {size}) AS g, (SELECT {words} AS w) AS v,
             LATERAL (SELECT CASE WHEN g <= {history}
                 THEN date_trunc('day', now()) - interval '{DAYS - 1} days'
                      + make_interval(secs => g * {(DAYS - 1) * 86400.0 / max(history, 1)})
                 ELSE date_trunc('day', now()) + make_interval(secs => (g - {history}) * {3600.0 / max(today, 1)})
             END AS at) AS t
    """


def _audit_sql(tenant: int, size: int) -> str:
    return f"""
        INSERT INTO audit_events (tenant_id, actor_type, actor_id, actor_label, action, target_type, target_id, ip,
                                  request_id, details, created_at)
        SELECT {tenant}, 'user', '1', 'owner@bench.example.com',
               (ARRAY['message.send','session.start','session.stop','token.create','webhook.replay'])[1 + g % 5],
               'session', 'bench-' || (g % 20), '192.0.2.' || (g % 250), md5(g::text), '{{}}'::jsonb,
               date_trunc('day', now()) - interval '{DAYS} days' + make_interval(secs => g * {DAYS * 86400.0 / size})
        FROM generate_series(1, {size}) AS g
    """


# 1 attempt in 50 fails and its retry (the next row, same msg_id) succeeds; 1 event in 1,000 fails for good
DELIVERY_STATUS = "CASE WHEN g % 1000 = 0 THEN 'dead' WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END"
DELIVERY_MSG = "CASE WHEN g % 50 = 1 AND g % 1000 <> 1 THEN g - 1 ELSE g END"


def _deliveries_sql(tenant: int, size: int, session: str) -> str:
    return f"""
        INSERT INTO webhook_deliveries (tenant_id, session_id, url, msg_id, event_type, payload, attempt, status,
                                        response_status, duration_ms, created_at)
        SELECT {tenant}, '{session}', 'https://hooks.example.com/waha', 'msg_' || {tenant} || '_' || {DELIVERY_MSG},
               'message', '{{"event": "message"}}'::jsonb, CASE WHEN g % 50 = 1 THEN 2 ELSE 1 END,
               {DELIVERY_STATUS}, CASE WHEN g % 50 = 0 THEN 500 ELSE 200 END, 40 + g % 200,
               date_trunc('day', now()) - interval '{DAYS - 1} days'
                 + make_interval(secs => g * {DAYS * 86400.0 / size})
        FROM generate_series(1, {size}) AS g
    """


def load(db: Any, size: int) -> None:
    """Fresh schema from the real migrations, the tenants, their sessions and a signed-in owner, then the rows."""
    from flask_migrate import upgrade
    from werkzeug.security import generate_password_hash

    from portal.models import WahaServer, WahaSession
    from portal.services import tenants as tenants_service
    from portal.services.audit import Actor

    with db.engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    upgrade()
    # messages are partitioned by month on PostgreSQL: the history reaches DAYS back, so its months need theirs
    from datetime import timedelta

    from portal.models import utcnow
    from portal.services import partitions

    partitions.ensure(now=utcnow() - timedelta(days=DAYS + 1), ahead=DAYS // 28 + 3)
    actor = Actor(type="system", label="bench")
    server = WahaServer(name="bench", base_url="http://127.0.0.1:9", api_key="bench", capacity=1000)
    db.session.add(server)
    db.session.flush()
    ids, bench_tenant = {}, None
    for slug in ("bench", "other"):
        tenant = tenants_service.create_tenant(slug, slug.title(), actor)
        ids[slug] = tenant.id
        bench_tenant = bench_tenant or tenant
        for label in ("a", "b"):
            db.session.add(
                WahaSession(
                    id=f"{slug}-{label}",
                    tenant_id=tenant.id,
                    server_id=server.id,
                    name=f"{slug.title()} {label.upper()}",
                    external_name=f"{slug}_{label}",
                    status="WORKING",
                    hmac_key="bench",
                )
            )
    db.session.commit()
    user = tenants_service.create_user(EMAIL, None, actor)
    user.password_hash = generate_password_hash(PASSWORD)
    db.session.commit()
    tenants_service.set_membership(bench_tenant, user, "owner", actor)

    started = time.perf_counter()
    with db.engine.begin() as conn:
        for slug, rows in (("bench", size), ("other", size // 10)):
            conn.execute(sa.text(_messages_sql(ids[slug], rows, (f"{slug}-a", f"{slug}-b"))))
            conn.execute(sa.text(_audit_sql(ids[slug], rows)))
            conn.execute(sa.text(_deliveries_sql(ids[slug], rows, f"{slug}-a")))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    print(f"  loaded {size:,} messages, audit events and deliveries in {time.perf_counter() - started:.0f} s")


def move_today(db: Any) -> None:
    """Reused data: the rows of the day they were loaded on move to today, so the dashboard has a day's volume."""
    with db.engine.begin() as conn:
        moved = conn.execute(
            sa.text(
                """
                WITH last AS (SELECT date_trunc('day', max(created_at)) AS day FROM messages)
                UPDATE messages SET created_at = created_at + (date_trunc('day', now()) - last.day)
                FROM last WHERE messages.created_at >= last.day AND last.day < date_trunc('day', now())
                """
            )
        ).rowcount
        conn.execute(
            sa.text(
                """
                WITH last AS (SELECT date_trunc('day', max(created_at)) AS day FROM webhook_deliveries)
                UPDATE webhook_deliveries SET created_at = created_at + (date_trunc('day', now()) - last.day)
                FROM last WHERE webhook_deliveries.created_at >= last.day AND last.day < date_trunc('day', now())
                """
            )
        )
    if moved:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE messages"))
            conn.execute(sa.text("VACUUM ANALYZE webhook_deliveries"))


def _todays_counts(db: Any, tenant_id: int) -> tuple[int, int, int]:
    """The day's inbound, outbound and failed outbound messages, counted from the table."""
    row = db.session.execute(
        sa.text(
            "SELECT count(*) FILTER (WHERE direction = 'in'), count(*) FILTER (WHERE direction = 'out'), "
            "count(*) FILTER (WHERE direction = 'out' AND status = 'ERROR') FROM messages "
            "WHERE tenant_id = :t AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        ),
        {"t": tenant_id},
    ).one()
    db.session.rollback()
    return int(row[0]), int(row[1]), int(row[2])


def spread_today(db: Any) -> None:
    """The day's messages arrive through the day: spread them evenly from midnight to now, the newest in the last
    seconds, so the dashboard has the day's volume and a stream of recent rows, as a busy tenant's day has."""
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                WITH day AS (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS start,
                                    now() - interval '1 second' AS until),
                     ranked AS (
                         SELECT m.id, m.created_at, row_number() OVER (ORDER BY m.created_at, m.id) AS n,
                                count(*) OVER () AS total
                         FROM messages m, day WHERE m.created_at >= day.start)
                UPDATE messages SET created_at = day.start + (day.until - day.start) * (ranked.n::float / ranked.total),
                                    updated_at = day.start + (day.until - day.start) * (ranked.n::float / ranked.total)
                FROM ranked, day WHERE messages.id = ranked.id AND messages.created_at = ranked.created_at
                """
            )
        )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE messages"))


# ---- measuring -------------------------------------------------------------------------------------------------


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


@contextmanager
def render_clock() -> Iterator[list[float]]:
    """CPU seconds spent in template rendering (flask.templating._render), for the duration of the block."""
    import flask.templating

    spent: list[float] = []
    original = flask.templating._render

    def timed_render(*args: Any, **kwargs: Any) -> str:
        started = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.thread_time() - started)

    flask.templating._render = timed_render  # type: ignore[assignment]
    try:
        yield spent
    finally:
        flask.templating._render = original  # type: ignore[assignment]


@contextmanager
def app_clock(app: Any) -> Iterator[list[float]]:
    """CPU seconds the portal's WSGI app spends on each request of the block (the thread's CPU time inside the
    app: the test client's own work of building the request and reading the answer is not the portal's)."""
    inner = app.wsgi_app
    spent: list[float] = []

    def timed(environ: Any, start_response: Any) -> Any:
        started = time.thread_time()
        try:
            return inner(environ, start_response)
        finally:
            spent.append(time.thread_time() - started)

    app.wsgi_app = timed
    try:
        yield spent
    finally:
        app.wsgi_app = inner


def measure(client: Any, path: str, runs: int) -> tuple[list[float], list[float]]:
    """Wall milliseconds (through the test client) and the app's CPU milliseconds of `runs` requests of one page
    (after a warm-up)."""
    for _ in range(5):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:300])
    wall = []
    with app_clock(client.application) as spent:
        for _ in range(runs):
            started = time.perf_counter()
            client.get(path)
            wall.append((time.perf_counter() - started) * 1000)
    return wall, [seconds * 1000 for seconds in spent]


def explain(app: Any, client: Any, path: str) -> tuple[list[str], float]:
    """The plans of the statements one request of `path` runs against the list tables, and the sum of their
    execution times in PostgreSQL (ms, from EXPLAIN ANALYZE: what the load of the box moves least)."""
    from portal.extensions import db

    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and re.search(
            r"\b(messages|audit_events|webhook_deliveries)\b", statement
        ):
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    # read-only pages run on the autocommit engine (portal.dbengines); the statements portal.rawsql runs by
    # psycopg itself (the badge, the session names) are not seen here: none reads the list tables
    engines = [engine, app.extensions.get("portal_autocommit_engine")]
    for each in filter(None, engines):
        sa.event.listen(each, "before_cursor_execute", record)
    try:
        client.get(path)
    finally:
        for each in filter(None, engines):
            sa.event.remove(each, "before_cursor_execute", record)
    lines, total = [], 0.0
    with engine.connect() as conn:
        for statement, parameters in seen:
            best = None
            for _ in range(3):
                rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF) " + statement, parameters)
                plan = [r[0] for r in rows]
                took = float(re.search(r"Execution Time: ([0-9.]+)", plan[-1]).group(1))  # type: ignore[union-attr]
                best = took if best is None else min(best, took)
            total += best or 0.0
            first = " ".join(statement.split())[:110]
            lines.append(f"    {first}...")
            lines.extend(f"      {line}" for line in plan if "->" in line or not line.startswith(" "))
    return lines, total


def login(app: Any) -> Any:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, "no CSRF token on /login"
    response = client.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1)})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def run_size(size: int, args: argparse.Namespace) -> dict[str, tuple[float, float, float, float]]:
    """{page: (p50, p95, mean cpu, db ms)} for one size, printed as it goes."""
    from portal import pagination
    from portal.extensions import db, redis_store
    from portal.services import messages

    url = url_for_size(size)
    create_database(url)
    app = make_app(url)
    with app.app_context():
        if args.reload or not loaded(db, size):
            print(f"loading {size:,} messages into {url.rsplit('/', 1)[1]} ...")
            load(db, size)
        else:
            from flask_migrate import upgrade

            upgrade()  # reused data gets the newest schema
            move_today(db)
        spread_today(db)
        redis_store.client.flushdb()  # the dashboard's kept counts belong to the database of the last size
        tenant_id = db.session.execute(sa.text("SELECT id FROM tenants WHERE slug = 'bench'")).scalar()
        middle = size // 2
        row = db.session.execute(
            sa.text(
                "SELECT created_at, id FROM messages WHERE tenant_id = :t ORDER BY created_at DESC, id DESC "
                "OFFSET :n LIMIT 1"
            ),
            {"t": tenant_id, "n": middle},
        ).one()
        log_cursor = messages.encode_cursor(type("Row", (), {"created_at": row[0], "id": row[1]})())
        audit_id = db.session.execute(
            sa.text(
                "SELECT id FROM audit_events WHERE tenant_id = :t ORDER BY created_at DESC, id DESC OFFSET :n LIMIT 1"
            ),
            {"t": tenant_id, "n": middle},
        ).scalar()
        delivery_id = db.session.execute(
            sa.text(
                "SELECT id FROM webhook_deliveries WHERE tenant_id = :t ORDER BY created_at DESC, id DESC "
                "OFFSET :n LIMIT 1"
            ),
            {"t": tenant_id, "n": middle},
        ).scalar()
        today = db.session.execute(
            sa.text("SELECT count(*) FROM messages WHERE tenant_id = :t AND created_at >= date_trunc('day', now())"),
            {"t": tenant_id},
        ).scalar()
        db.session.rollback()
        todays_counts = functools.partial(_todays_counts, db, tenant_id)
    print(f"\n== {size:,} messages for the tenant ({today:,} today); load average {os.getloadavg()[0]:.2f}")
    client = login(app)
    pages = [
        ("baseline GET /healthz", "/healthz"),
        ("message log, newest page", "/messages/"),
        ("message log, middle page", f"/messages/?cursor={log_cursor}"),
        (f"search, common word ({COMMON_WORD})", f"/messages/?q={COMMON_WORD}"),
        (f"search, rare word ({RARE_WORD})", f"/messages/?q={RARE_WORD}"),
        ("dashboard", "/"),
        ("audit log, newest page", "/admin/audit/"),
        ("audit log, middle page", f"/admin/audit/?before={audit_id}"),
        ("deliveries, newest page", "/admin/webhooks/deliveries"),
        ("deliveries, middle page", f"/admin/webhooks/deliveries?cursor={pagination.encode_id(delivery_id, 'd')}"),
    ]
    results: dict[str, tuple[float, float, float, float]] = {}
    print(f"  {'page':34} {'p50 ms':>8} {'p95 ms':>8} {'target':>8} {'p95/tgt':>8} {'cpu ms':>8} {'db ms':>8}")
    for label, path in pages:
        wall, cpu = measure(client, path, args.runs)
        plans, db_ms = explain(app, client, path) if not label.startswith("baseline") else ([], 0.0)
        results[label] = (statistics.median(wall), p95(wall), statistics.mean(cpu), db_ms)
        target = "" if label.startswith("baseline") else f"{TARGET_MS:.0f}"
        ratio = "" if label.startswith("baseline") else f"{p95(wall) / TARGET_MS:.2f}"
        print(
            f"  {label:34} {statistics.median(wall):8.2f} {p95(wall):8.2f} {target:>8} {ratio:>8} "
            f"{statistics.mean(cpu):8.2f} {db_ms:8.2f}"
        )
        if args.explain:
            print("\n".join(plans))
    shown = client.get("/").get_data(as_text=True)
    with app.app_context():
        expected = todays_counts()
    on_page = tuple(  # the page groups the digits ("10,001")
        int(re.sub(r"\D", "", re.search(rf'id="stat-{name}">([^<]+)<', shown).group(1)))  # type: ignore[union-attr]
        for name in ("in", "out", "failed-sends")
    )
    if on_page != expected:
        raise SystemExit(f"the dashboard shows {on_page} for the day's in, out and failed, the table holds {expected}")
    print(f"  dashboard's counts of the day checked against the table: {expected}")
    with render_clock() as spent:
        _, cpu = measure(client, "/messages/", args.runs)
    rendering = statistics.mean(spent[5:]) * 1000
    size_kb = len(client.get("/messages/").data) / 1024
    print(
        f"  HTML message log: app CPU {statistics.mean(cpu):.2f} ms per page (target <= {CPU_TARGET_MS:.0f} ms), "
        f"of which template rendering {rendering:.2f} ms; {size_kb:.0f} KB"
    )
    results["log cpu"] = (0.0, 0.0, statistics.mean(cpu), rendering)
    with app.app_context():
        db.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--explain", action="store_true", help="print the query plans of each page")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average {os.getloadavg()} on {os.cpu_count()} cores (other work on the box skews p95)")
    by_size = {size: run_size(size, args) for size in sizes}

    first, last = sizes[0], sizes[-1]
    print(f"\n== p95 (ms) by size; target p95 < {TARGET_MS:.0f} ms, growth {first:,} -> {last:,} < {GROWTH_TARGET}x")
    print("   (db ms: the page's statements' execution time in PostgreSQL at the largest size)")
    header = " ".join(f"{s:>10,}" for s in sizes)
    print(f"  {'page':34} {header} {'growth':>8} {'ok':>4} {'db ms':>8}")
    for label in by_size[first]:
        if label == "log cpu":
            continue
        values = [by_size[s][label][1] for s in sizes]
        growth = values[-1] / values[0]
        ok = label.startswith("baseline") or (values[-1] < TARGET_MS and growth < GROWTH_TARGET)
        cells = " ".join(f"{v:10.2f}" for v in values)
        print(f"  {label:34} {cells} {growth:7.2f}x {'yes' if ok else 'NO':>4} {by_size[last][label][3]:8.2f}")
    cpus = " ".join(f"{by_size[s]['log cpu'][2]:10.2f}" for s in sizes)
    renders = " ".join(f"{by_size[s]['log cpu'][3]:10.2f}" for s in sizes)
    print(f"  {'HTML log app CPU (mean ms)':34} {cpus}  target <= {CPU_TARGET_MS}")
    print(f"  {'  of which template rendering':34} {renders}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
