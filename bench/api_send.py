"""Benchmark: what POST /waha/sessions/<id>/send adds over the same send made straight to WAHA (wahasim).

wahasim and the portal each run in their own process (so neither competes with the client for the GIL); the
client here posts over loopback with keep-alive. The baseline posts /api/sendText to wahasim; the measured path
posts to the portal, which authenticates the token, rate-limits, checks pacing in Redis, writes the message row,
calls the same wahasim and records the result. The target (issue 4) is at most 5 ms added at the median.

    .venv/bin/python bench/api_send.py [--n 300]

Needs PostgreSQL and Redis as for the tests; uses the database BENCH_DATABASE_URL (default portal_bench, created
and reset here) and Redis db 14.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/portal_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
API_KEY = "bench-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _environ(waha_url: str) -> dict[str, str]:
    from portal.config import environ_for_tests

    return environ_for_tests(DATABASE_URL=DB_URL, REDIS_URL=REDIS_URL, WAHA_BASE_URL=waha_url, WAHA_API_KEY=API_KEY,
                             LOG_LEVEL="ERROR", API_RATE_LIMIT="1000000 per minute")


def _prepare(waha_url: str) -> str:
    """A fresh schema, the WAHA server row, a tenant that may send fast and its token."""
    from flask_migrate import upgrade

    from portal import create_app
    from portal.extensions import db, redis_store
    from portal.services.servers import ensure_default_server
    from tests.factories import make_tenant, make_token

    admin = sa.create_engine(DB_URL.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = DB_URL.rsplit("/", 1)[1]
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    app = create_app(_environ(waha_url))
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        upgrade()
        redis_store.client.flushdb()
        ensure_default_server()
        tenant = make_tenant("bench", send_rate_per_minute=10_000_000)
        token = make_token(tenant)
        db.session.remove()
        db.engine.dispose()
    return token


def _serve_portal(waha_url: str, port: int) -> None:
    from werkzeug.serving import make_server

    from portal import create_app

    app = create_app(_environ(waha_url))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # an access line per request would be measured too
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


def _timed(send, n: int) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        send(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()

    sim_port, portal_port = _free_port(), _free_port()
    waha_url, portal = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{portal_port}"
    sim = subprocess.Popen(
        [sys.executable, "-m", "wahasim", "--port", str(sim_port), "--api-key", API_KEY, "--auto-scan", "0.2",
         "--ack-delay", "600", "--log-level", "ERROR"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        _wait_for(waha_url + "/ping")
        token = _prepare(waha_url)
        server = multiprocessing.get_context("fork").Process(target=_serve_portal, args=(waha_url, portal_port),
                                                             daemon=True)
        server.start()
        _wait_for(portal + "/waha/openapi.json")

        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        created = api.post(f"{portal}/waha/sessions", json={"sessionName": "bench"}).json()
        deadline = time.monotonic() + 20
        while api.post(f"{portal}/waha/sessions/{created['id']}/sync").json()["status"] != "WORKING":
            if time.monotonic() > deadline:
                raise RuntimeError("the session did not reach WORKING")
            time.sleep(0.1)

        waha = requests.Session()
        waha.headers["X-Api-Key"] = API_KEY

        def direct(i: int) -> None:
            response = waha.post(f"{waha_url}/api/sendText", json={
                "session": created["externalSessionId"], "chatId": "491701234567@c.us", "text": f"direct {i}"})
            assert response.status_code in (200, 201), response.text

        def through_portal(i: int) -> None:
            response = api.post(f"{portal}/waha/sessions/{created['id']}/send",
                                json={"to": "+491701234567", "text": f"portal {i}"})
            assert response.status_code == 200, response.text

        # Warm both paths, then alternate blocks so any drift of the machine hits both alike.
        _timed(direct, 20)
        _timed(through_portal, 20)
        base: list[float] = []
        measured: list[float] = []
        for _ in range(5):
            base += _timed(direct, args.n // 5)
            measured += _timed(through_portal, args.n // 5)

        base_median, portal_median = statistics.median(base), statistics.median(measured)
        print(f"sends per path: {len(base)}")
        print(f"straight to wahasim: median {base_median:.2f} ms, p95 {statistics.quantiles(base, n=20)[18]:.2f} ms")
        print(f"through /waha:       median {portal_median:.2f} ms, "
              f"p95 {statistics.quantiles(measured, n=20)[18]:.2f} ms")
        print(f"added by the portal: {portal_median - base_median:.2f} ms at the median (target <= 5 ms); "
              f"ratio {portal_median / base_median:.2f}x")
    finally:
        if server is not None:
            server.terminate()
        sim.terminate()
        sim.wait(timeout=10)


if __name__ == "__main__":
    main()
