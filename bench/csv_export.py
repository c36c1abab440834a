"""Benchmark: the message log's CSV export of 1,000,000 messages through the real Flask app, against a bare
COPY of the same columns and a raw cursor fetch of them in the same run.

One tenant has N messages (default 1,000,000) over 60 days in two sessions (a few per thousand start with "=",
so the formula guard has work), loaded once with generate_series into a database of its own and reused while the
count matches. The export is requested as a signed-in owner through the Flask test client (the whole request
in-process: session, permissions, count, audit, keyset batches, CSV) and its body is read chunk by chunk as a
client would, counting rows and bytes; the process's resident memory is read at 100,000 rows, at the middle and at
the end (flat: the export holds one batch at a time).

Printed: rows/s of the export (target >= 50,000), of `COPY (SELECT ...) TO STDOUT WITH CSV` and of a raw
server-side cursor fetch of the same columns (psycopg, no formatting), the ratios, resident memory at 100k and
at the end, and the peak growth of the process (ru_maxrss) over the export.

    .venv/bin/python bench/csv_export.py [--rows 1000000] [--reload] [--query "direction=out"]

Needs PostgreSQL and Redis as for the tests; database portal_export_bench (BENCH_EXPORT_DATABASE_URL) and Redis
db 7 (BENCH_REDIS_URL).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.get(
    "BENCH_EXPORT_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/portal_export_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
TARGET_ROWS_S = 50_000
DAYS = 60
EMAIL = "owner@bench.example.com"
PASSWORD = "bench-password-1"
COLUMNS = "id, created_at, session_id, direction, chat_id, body, media, status, error"


def rss_mb() -> float:
    """The process's resident memory now (MB), from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def loaded(db: Any, rows: int) -> bool:
    try:
        count = db.session.execute(
            sa.text("SELECT count(*) FROM messages m JOIN tenants t ON t.id = m.tenant_id WHERE t.slug = 'bench'")
        ).scalar()
    except (sa.exc.ProgrammingError, sa.exc.OperationalError):  # no schema yet
        db.session.rollback()
        return False
    db.session.rollback()
    return count == rows


def load(db: Any, rows: int) -> None:
    """Fresh schema from the migrations, a tenant with two sessions and an owner, then the rows (one INSERT ...
    SELECT generate_series, or a recursive CTE on SQLite), then VACUUM ANALYZE."""
    from datetime import timedelta

    from flask_migrate import upgrade
    from werkzeug.security import generate_password_hash

    from portal.models import WahaServer, WahaSession, utcnow
    from portal.services import partitions
    from portal.services import tenants as tenants_service
    from portal.services.audit import Actor

    sqlite = db.engine.dialect.name == "sqlite"
    if not sqlite:
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    upgrade()
    partitions.ensure(now=utcnow() - timedelta(days=DAYS + 1), ahead=DAYS // 28 + 3)
    actor = Actor(type="system", label="bench")
    server = WahaServer(name="bench", base_url="http://127.0.0.1:9", api_key="bench", capacity=1000)
    db.session.add(server)
    db.session.flush()
    tenant = tenants_service.create_tenant("bench", "Bench", actor)
    for label in ("a", "b"):
        db.session.add(
            WahaSession(
                id=f"bench-{label}",
                tenant_id=tenant.id,
                server_id=server.id,
                name=f"Bench {label.upper()}",
                external_name=f"bench_{label}",
                status="WORKING",
                hmac_key="bench",
            )
        )
    db.session.commit()
    user = tenants_service.create_user(EMAIL, None, actor)
    user.password_hash = generate_password_hash(PASSWORD)
    db.session.commit()
    tenants_service.set_membership(tenant, user, "owner", actor)
    started = time.perf_counter()
    with db.engine.begin() as conn:
        conn.execute(sa.text((_sqlite_rows if sqlite else _postgres_rows)(tenant.id, rows)))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE" if sqlite else "VACUUM ANALYZE"))
    print(f"  loaded {rows:,} messages in {time.perf_counter() - started:.0f} s")


def _postgres_rows(tenant_id: int, rows: int) -> str:
    return f"""
        INSERT INTO messages (tenant_id, session_id, direction, source, chat_id, from_me, body, status,
                              error, metadata, created_at, updated_at)
        SELECT {tenant_id}, CASE WHEN g % 2 = 0 THEN 'bench-a' ELSE 'bench-b' END,
               CASE WHEN g % 3 = 0 THEN 'in' ELSE 'out' END, 'api',
               '4917' || lpad((g % 5000)::text, 8, '0') || '@c.us', g % 3 <> 0,
               CASE WHEN g % 500 = 0 THEN '=SUM(A' || g || ')'
                    ELSE 'Hello, your order #' || g || ' is on its way; reply "stop" to opt out' END,
               CASE WHEN g % 3 = 0 THEN 'READ' WHEN g % 50 = 1 THEN 'ERROR' ELSE 'DEVICE' END,
               CASE WHEN g % 50 = 1 AND g % 3 <> 0 THEN 'WAHA refused the message' END,
               '{{}}'::jsonb, at, at
        FROM generate_series(1, {rows}) AS g,
             LATERAL (SELECT date_trunc('day', now()) - interval '{DAYS} days'
                             + make_interval(secs => g * {DAYS * 86400.0 / rows}) AS at) AS t
    """


def _sqlite_rows(tenant_id: int, rows: int) -> str:
    """The same rows on SQLite (times stored as SQLAlchemy writes them: "YYYY-MM-DD HH:MM:SS.ffffff")."""
    return f"""
        WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {rows})
        INSERT INTO messages (tenant_id, session_id, direction, source, chat_id, from_me, body, status,
                              error, metadata, created_at, updated_at)
        SELECT {tenant_id}, CASE WHEN g % 2 = 0 THEN 'bench-a' ELSE 'bench-b' END,
               CASE WHEN g % 3 = 0 THEN 'in' ELSE 'out' END, 'api',
               '4917' || substr('00000000' || (g % 5000), -8) || '@c.us', g % 3 <> 0,
               CASE WHEN g % 500 = 0 THEN '=SUM(A' || g || ')'
                    ELSE 'Hello, your order #' || g || ' is on its way; reply "stop" to opt out' END,
               CASE WHEN g % 3 = 0 THEN 'READ' WHEN g % 50 = 1 THEN 'ERROR' ELSE 'DEVICE' END,
               CASE WHEN g % 50 = 1 AND g % 3 <> 0 THEN 'WAHA refused the message' END,
               '{{}}', at, at
        FROM (SELECT g, strftime('%Y-%m-%d %H:%M:%f000', 'now', 'start of day', '-{DAYS} days',
                                 '+' || (g * {DAYS * 86400.0 / rows}) || ' seconds') AS at FROM s)
    """


def login(app: Any) -> Any:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, "no CSRF token on /login"
    response = client.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1)})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def baseline_copy(url: str, tenant_id: int) -> tuple[int, float]:
    """Rows and seconds of a bare COPY of the same columns, newest first, to this process."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    started = time.perf_counter()
    lines = 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        sql = (
            f"COPY (SELECT {COLUMNS} FROM messages WHERE tenant_id = {tenant_id} "
            "ORDER BY created_at DESC, id DESC) TO STDOUT WITH (FORMAT csv, HEADER)"
        )
        with cur.copy(sql) as copy:
            for block in copy:
                lines += bytes(block).count(b"\n")
    return lines - 1, time.perf_counter() - started


def baseline_sqlite(url: str, tenant_id: int) -> tuple[int, float]:
    """SQLite: rows and seconds of a raw sqlite3 fetch of the same columns written by the bare csv module."""
    import csv
    import io
    import sqlite3

    started = time.perf_counter()
    rows = 0
    out = io.StringIO()
    writer = csv.writer(out)
    with sqlite3.connect(sa.make_url(url).database or "") as conn:
        cur = conn.execute(
            f"SELECT {COLUMNS} FROM messages WHERE tenant_id = ? ORDER BY created_at DESC, id DESC", (tenant_id,)
        )
        while batch := cur.fetchmany(5000):
            writer.writerows(batch)
            out.seek(0)
            out.truncate()
            rows += len(batch)
    return rows, time.perf_counter() - started


def baseline_fetch(url: str, tenant_id: int) -> tuple[int, float]:
    """Rows and seconds of a raw server-side cursor fetch of the same columns (no formatting at all)."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    started = time.perf_counter()
    rows = 0
    with psycopg.connect(dsn) as conn, conn.cursor(name="bench_fetch") as cur:
        cur.itersize = 5000
        cur.execute(
            f"SELECT {COLUMNS} FROM messages WHERE tenant_id = %s ORDER BY created_at DESC, id DESC", (tenant_id,)
        )
        while batch := cur.fetchmany(5000):
            rows += len(batch)
    return rows, time.perf_counter() - started


def export(client: Any, query: str) -> dict[str, Any]:
    """Stream the export as a client reads it; rows, bytes, seconds and memory along the way."""
    before_rss, before_peak = rss_mb(), peak_mb()
    started = time.perf_counter()
    response = client.get(f"/messages/export{'?' + query if query else ''}")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.is_streamed
    expected = int(response.headers["X-Export-Rows"])
    lines, size, marks = 0, 0, {}
    for chunk in response.response:
        data = chunk if isinstance(chunk, bytes) else chunk.encode()
        lines += data.count(b"\r\n")
        size += len(data)
        for mark in (100_000, expected // 2, expected):
            if mark not in marks and lines - 1 >= mark:
                marks[mark] = rss_mb()
    response.close()
    took = time.perf_counter() - started
    return {
        "rows": lines - 1,
        "expected": expected,
        "bytes": size,
        "seconds": took,
        "rss_before": before_rss,
        "marks": marks,
        "peak_growth": peak_mb() - before_peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--query", default="", help='filters of the export, e.g. "direction=out&q=order"')
    parser.add_argument("--sqlite", metavar="PATH", help="run on a SQLite file (the embedded default) instead")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()} on {os.cpu_count()} cores (other work on the box slows every column)")
    from portal.extensions import db

    url = f"sqlite:///{Path(args.sqlite).resolve()}" if args.sqlite else DATABASE_URL
    if not args.sqlite:
        create_database(url)
    app = make_app(url)
    with app.app_context():
        if args.reload or not loaded(db, args.rows):
            print(f"loading {args.rows:,} messages into {url.rsplit('/', 1)[1]} ...")
            if args.sqlite:
                db.engine.dispose()
                Path(args.sqlite).unlink(missing_ok=True)
            load(db, args.rows)
        else:
            from flask_migrate import upgrade

            upgrade()
        tenant_id = db.session.execute(sa.text("SELECT id FROM tenants WHERE slug = 'bench'")).scalar()
        db.session.rollback()
    client = login(app)
    client.get("/messages/export?since=2001-01-01&until=2001-01-02").get_data()  # warm-up: imports, caches

    if args.sqlite:
        baselines = [("baseline: sqlite3 fetch + bare csv.writer", *baseline_sqlite(url, tenant_id))]
    else:
        baselines = [
            ("baseline: COPY (SELECT ...) TO STDOUT CSV", *baseline_copy(url, tenant_id)),
            ("baseline: raw server-side cursor fetch", *baseline_fetch(url, tenant_id)),
        ]
    result = export(client, args.query)
    rate = result["rows"] / result["seconds"]
    print(f"\n== CSV export of the message log ({result['rows']:,} rows, {result['bytes'] / 1e6:.0f} MB)")
    print(f"  {'path':44} {'rows':>10} {'seconds':>8} {'rows/s':>10}")
    for label, rows, seconds in baselines:
        print(f"  {label:44} {rows:10,} {seconds:8.2f} {rows / seconds:10,.0f}")
    print(
        f"  {'GET /messages/export (Flask test client)':44} {result['rows']:10,} {result['seconds']:8.2f} {rate:10,.0f}"
    )
    ratios = "; ".join(
        f"export / {label.split(': ')[1]}: {rate / (rows / seconds):.2f}x" for label, rows, seconds in baselines
    )
    verdict = "yes" if rate >= TARGET_ROWS_S else "NO"
    print(f"  {ratios}; target >= {TARGET_ROWS_S:,} rows/s: {verdict} ({rate / TARGET_ROWS_S:.2f}x)")
    assert result["rows"] == result["expected"], (result["rows"], result["expected"])
    marks = result["marks"]
    first, last = marks.get(100_000), marks.get(result["expected"])
    print(
        f"  resident memory: {result['rss_before']:.0f} MB before, "
        + ", ".join(f"{rss:.0f} MB at {mark:,} rows" for mark, rss in sorted(marks.items()))
        + f"; peak growth over the export {result['peak_growth']:.1f} MB"
    )
    if first is not None and last is not None:
        flat = "yes" if last - first < 16 else "NO"
        print(f"  100k -> {result['expected']:,} rows: {last - first:+.1f} MB (flat: {flat})")
    print(f"load average {os.getloadavg()}")
    with app.app_context():
        db.engine.dispose()


if __name__ == "__main__":
    main()
