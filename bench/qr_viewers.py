"""Benchmark: 50 people watching one QR code cost WAHA at most one QR call per cache window.

One session waits for its scan on a wahasim server (in this process, so every request that reaches it is
counted). 50 viewers (5 processes x 10 threads, as web workers would be) poll `sessions.get_qr` every
`--interval` seconds, the way the portal's QR fragment polls. Baseline, same run: the same 50 viewers asking
WAHA directly, without the Redis cache and lock. Target: <= 1 WAHA QR call per cache window.

    .venv/bin/python bench/qr_viewers.py [--viewers 50] [--seconds 12] [--interval 0.5]

Needs PostgreSQL and Redis as for the tests; uses BENCH_DATABASE_URL (default database portal_bench_sessions,
reset here) and Redis db 8.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/portal_bench_sessions")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
API_KEY = "bench-key"
PROCESSES = 5


def environ(waha_url: str) -> dict[str, str]:
    from portal.config import environ_for_tests

    return environ_for_tests(
        DATABASE_URL=DB_URL, REDIS_URL=REDIS_URL, WAHA_BASE_URL=waha_url, WAHA_API_KEY=API_KEY, LOG_LEVEL="ERROR"
    )


def reset_database(env: dict[str, str], db_url: str = DB_URL) -> Any:
    """Create the database `db_url` names when missing, rebuild its schema from the migrations, empty Redis."""
    from flask_migrate import upgrade

    from portal import create_app
    from portal.extensions import db, redis_store

    admin = sa.create_engine(db_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = db_url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    app = create_app(env)
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        upgrade()
        redis_store.client.flushdb()
    return app


def viewers(
    env: dict[str, str],
    tenant_id: int,
    session_id: str,
    threads: int,
    start_at: float,
    seconds: float,
    interval: float,
    cached: bool,
    results: Any,
) -> None:
    """One web process: `threads` viewers polling the QR until the run ends; reports latencies and errors."""
    from portal import create_app
    from portal.extensions import db
    from portal.models import Tenant
    from portal.services import servers, sessions
    from portal.services.errors import ServiceError

    app = create_app(env)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def view() -> None:
        with app.app_context():
            tenant = db.session.get(Tenant, tenant_id)
            session = sessions.get_session(tenant, session_id)
            client, external = servers.client_for(session.server), session.external_name
            db.session.rollback()
            time.sleep(max(0.0, start_at - time.time()))
            end = start_at + seconds
            while time.time() < end:
                started = time.perf_counter()
                try:
                    if cached:
                        sessions.get_qr(tenant, session_id)
                    else:
                        client.get_qr(external)
                    outcome = None
                except ServiceError as exc:
                    outcome = exc.code
                finally:
                    db.session.rollback()
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
                    if outcome:
                        errors.append(outcome)
                time.sleep(interval)
            db.session.remove()

    workers = [threading.Thread(target=view) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((latencies, errors))


def run(
    env: dict[str, str],
    tenant_id: int,
    session_id: str,
    n: int,
    seconds: float,
    interval: float,
    cached: bool,
    calls: list[float],
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    start_at = time.time() + 4.0  # every process has built its app and connections by then
    per_process = [n // PROCESSES + (1 if i < n % PROCESSES else 0) for i in range(PROCESSES)]
    processes = [
        ctx.Process(target=viewers, args=(env, tenant_id, session_id, k, start_at, seconds, interval, cached, results))
        for k in per_process
        if k
    ]
    calls.clear()
    for process in processes:
        process.start()
    collected = [results.get() for _ in processes]
    for process in processes:
        process.join()
    stamps = sorted(t for t in calls if start_at <= t <= start_at + seconds + 1)
    latencies = [v for part, _ in collected for v in part]
    errors = [e for _, part in collected for e in part]
    return {"calls": stamps, "latencies": latencies, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()

    from wahasim.testing import SimServer

    sim = SimServer(api_key=API_KEY, starting_delay=0.05, qr_first_seconds=600)
    sim.start()
    calls: list[float] = []
    inner = sim._server.app

    def counting(environ_: dict, start_response: Any) -> Any:
        if environ_.get("PATH_INFO", "").endswith("/auth/qr"):
            calls.append(time.time())
        return inner(environ_, start_response)

    sim._server.app = counting
    try:
        env = environ(sim.url)
        app = reset_database(env)
        from portal.extensions import db
        from portal.services import sessions
        from portal.services.servers import ensure_default_server
        from tests.factories import TEST_ACTOR, make_tenant

        with app.app_context():
            ensure_default_server()
            tenant = make_tenant("bench")
            session = sessions.create_session(tenant, TEST_ACTOR, name="QR")
            deadline = time.monotonic() + 10
            while sessions.sync_session(tenant, session.id).status != "SCAN_QR_CODE":
                if time.monotonic() > deadline:
                    raise RuntimeError("the session never showed a QR code")
                time.sleep(0.05)
            tenant_id, session_id = tenant.id, session.id
            db.session.remove()

        window = sessions.QR_CACHE_SECONDS
        base = run(env, tenant_id, session_id, args.viewers, window, args.interval, False, calls)
        measured = run(env, tenant_id, session_id, args.viewers, args.seconds, args.interval, True, calls)
    finally:
        sim._server.app = inner
        sim.stop()

    windows = args.seconds / window
    stamps = measured["calls"]
    # The most QR calls that fell into any one cache-window-long stretch of the run.
    busiest = max((sum(1 for t in stamps if s <= t < s + window) for s in stamps), default=0)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    base_per_window = len(base["calls"])
    per_window = len(stamps) / windows
    lat = measured["latencies"]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{args.viewers} viewers in {PROCESSES} processes, polling every {args.interval} s; cache window {window} s")
    print(f"baseline, no cache: {base_per_window} WAHA QR calls in one window ({len(base['latencies'])} answers)")
    print(
        f"with the cache: {len(stamps)} WAHA QR calls in {args.seconds:.0f} s = {per_window:.2f} per window; "
        f"busiest window {busiest} (target <= 1: {'met' if busiest <= 1 else 'MISSED'})"
    )
    if gaps:
        print(f"shortest gap between two QR calls: {min(gaps):.2f} s")
    print(
        f"viewer answers: {len(lat)}, errors: {len(measured['errors'])} {sorted(set(measured['errors']))}; "
        f"get_qr p50 {statistics.median(lat):.2f} ms, p95 {statistics.quantiles(lat, n=20)[18]:.2f} ms"
    )
    print(f"WAHA calls saved: {base_per_window / max(per_window, 1e-9):.0f}x fewer per window than without the cache")


if __name__ == "__main__":
    main()
