"""Benchmark: status sync of 1,000 sessions on one WAHA server (wahasim in its own process).

Measures `services.maintenance.sync_server` (the scheduled sync: one list call, every local row updated in one
pass) twice: when every row changes (all 1,000 statuses differ, each change audited), and in the steady state
(nothing changed). Baseline in the same run: the bare `GET /api/sessions?all=true` call the sync is built on.
Target: one WAHA call (the list) per sync and under 1 s.

    .venv/bin/python bench/sync.py [--sessions 1000]

Needs PostgreSQL and Redis as for the tests (database portal_bench_events and Redis db 11, reset here).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._events_setup import environ, free_port, reset_database, seed_sessions, wait_for_port  # noqa: E402

API_KEY = "bench-key"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1000)
    args = parser.parse_args()

    port = free_port()
    sim_url = f"http://127.0.0.1:{port}"
    sim = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/python"),
            "-m",
            "wahasim",
            "--port",
            str(port),
            "--api-key",
            API_KEY,
            "--auto-scan",
            "0.2",
            "--starting-delay",
            "0.1",
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        print("preparing database and sessions ...", flush=True)
        reset_database()
        rows = seed_sessions(args.sessions, waha_url=sim_url, api_key=API_KEY, tenants=20)
        http = requests.Session()
        http.headers["X-Api-Key"] = API_KEY
        for row in rows:
            config = {"metadata": {"portal.session_id": row["id"], "portal.tenant_id": str(row["tenant_id"])}}
            http.post(
                f"{sim_url}/api/sessions", json={"name": row["name"], "start": True, "config": config}, timeout=10
            ).raise_for_status()
        deadline = time.monotonic() + 120
        while True:
            statuses = Counter(s["status"] for s in http.get(f"{sim_url}/api/sessions?all=true", timeout=30).json())
            if statuses.get("WORKING") == args.sessions or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        print(f"WAHA side: {dict(statuses)}", flush=True)
        results = _measure(sim_url, args.sessions)
    finally:
        os.killpg(sim.pid, signal.SIGTERM)
        sim.wait(timeout=10)

    baseline, first, steady, calls, changed = results
    print()
    print(f"bare list call ({args.sessions} sessions):   {baseline * 1000:7.1f} ms   (baseline)")
    print(
        f"sync, every row changed:            {first * 1000:7.1f} ms   ({changed} changes audited)   "
        f"{first / baseline:5.1f}x the list call"
    )
    print(f"sync, steady state:                 {steady * 1000:7.1f} ms   {steady / baseline:5.1f}x the list call")
    print(f"WAHA calls per sync: {dict(calls)}")
    worst = max(first, steady)
    one_list = dict(calls) == {"list_sessions": 1}
    print(
        f"target: one WAHA call, the list ({'OK' if one_list else 'NO'}) and < 1,000 ms: worst {worst * 1000:.0f} ms = "
        f"{worst:.2f} of target   {'OK' if worst < 1 and one_list else 'ABOVE TARGET'}"
    )


def _measure(sim_url: str, count: int) -> tuple[float, float, float, Counter, int]:
    import sqlalchemy as sa

    from portal import create_app
    from portal.extensions import db
    from portal.models import WahaServer
    from portal.services import maintenance
    from portal.services.servers import client_for

    calls: Counter = Counter()
    app = create_app(environ(WAHA_BASE_URL=sim_url, WAHA_API_KEY=API_KEY, WAHA_TIMEOUT="30000"))
    app.extensions["portal_waha_observer"] = lambda name, outcome, seconds: calls.update([name])
    with app.app_context():
        server = db.session.scalar(sa.select(WahaServer))
        client = client_for(server)
        baseline_runs = []
        for _ in range(3):
            started = time.perf_counter()
            client.list_sessions(all=True)
            baseline_runs.append(time.perf_counter() - started)
        baseline = statistics.median(baseline_runs)
        # Every row differs from WAHA: the worst case, each row's change applied and audited.
        db.session.execute(sa.text("UPDATE waha_sessions SET status = 'STARTING', me = NULL"))
        db.session.commit()
        db.session.remove()
        server = db.session.scalar(sa.select(WahaServer))
        calls.clear()
        started = time.perf_counter()
        report = maintenance.sync_server(server, recover=False)
        first = time.perf_counter() - started
        first_calls = Counter(calls)
        steady_runs = []
        for _ in range(3):
            db.session.remove()
            server = db.session.scalar(sa.select(WahaServer))
            started = time.perf_counter()
            maintenance.sync_server(server, recover=False)
            steady_runs.append(time.perf_counter() - started)
        db.session.remove()
    return baseline, first, statistics.median(steady_runs), first_calls, report.changed


if __name__ == "__main__":
    main()
