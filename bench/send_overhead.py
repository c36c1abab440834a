"""Benchmark: what sending through the portal adds over sending straight to WAHA, layer by layer.

wahasim runs in its own process; four ways of sending the same text to the same paired session are timed
in alternating blocks (so drift of the machine hits them alike):

  1. straight   POST /api/sendText to wahasim with requests (the baseline)
  2. client     the portal's WahaClient.send_text (pool, breaker, pre-generated id), in this process
  3. service    portal.services.messages.send_message in this process: validation, pacing in Redis, the row
                written and committed before the call, the WAHA call, the row updated and audited
  4. api        POST /waha/sessions/<id>/send to the portal served by another process over loopback
                (bearer token, DTO, rate limit, then the same service)

The target (issue 4) is "adds at most 5 ms median over the same call made straight to wahasim" for path 4;
paths 2 and 3 show where the time goes. bench/api_send.py measures path 4 alone.

    .venv/bin/python bench/send_overhead.py [--n 300]

Needs PostgreSQL and Redis as for the tests; uses BENCH_DATABASE_URL (default database portal_bench_sessions,
reset here) and Redis db 8.
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
from typing import Callable

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.qr_viewers import API_KEY, environ, reset_database  # noqa: E402

CHAT = "491701234567@c.us"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def serve_portal(env: dict[str, str], port: int) -> None:
    from werkzeug.serving import make_server

    from portal import create_app

    app = create_app(env)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


def timed(send: Callable[[int], None], n: int) -> list[float]:
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

    sim_port, portal_port = free_port(), free_port()
    waha_url, portal_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{portal_port}"
    sim = subprocess.Popen(
        [sys.executable, "-m", "wahasim", "--port", str(sim_port), "--api-key", API_KEY, "--ack-delay", "600",
         "--log-level", "ERROR"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    portal = None
    try:
        wait_for(waha_url + "/ping")
        env = dict(environ(waha_url), API_RATE_LIMIT="1000000 per minute")
        app = reset_database(env)
        from portal.extensions import db
        from portal.services import messages, servers, sessions
        from portal.services.servers import ensure_default_server
        from tests.factories import TEST_ACTOR, make_tenant, make_token

        with app.app_context():
            ensure_default_server()
            tenant = make_tenant("bench", send_rate_per_minute=10_000_000)
            token = make_token(tenant)
            session = sessions.create_session(tenant, TEST_ACTOR, name="Send")
            requests.post(f"{waha_url}/_sim/sessions/{session.external_name}/scan", json={}, timeout=5)
            deadline = time.monotonic() + 10
            while sessions.sync_session(tenant, session.id).status != "WORKING":
                if time.monotonic() > deadline:
                    raise RuntimeError("the session did not reach WORKING")
                time.sleep(0.05)
            session_id, external = session.id, session.external_name
            client = servers.client_for(session.server)

            portal = multiprocessing.get_context("spawn").Process(target=serve_portal, args=(env, portal_port),
                                                                  daemon=True)
            portal.start()
            wait_for(portal_url + "/waha/openapi.json")

            waha = requests.Session()
            waha.headers["X-Api-Key"] = API_KEY
            api = requests.Session()
            api.headers["Authorization"] = f"Bearer {token}"

            def straight(i: int) -> None:
                response = waha.post(f"{waha_url}/api/sendText",
                                     json={"session": external, "chatId": CHAT, "text": f"straight {i}"})
                assert response.status_code == 201, response.text

            def through_client(i: int) -> None:
                client.send_text(external, CHAT, f"client {i}")

            def through_service(i: int) -> None:
                messages.send_message(tenant, session_id, TEST_ACTOR, to="+49 170 1234567", text=f"service {i}")

            def through_api(i: int) -> None:
                response = api.post(f"{portal_url}/waha/sessions/{session_id}/send",
                                    json={"to": "+491701234567", "text": f"api {i}"})
                assert response.status_code in (200, 201), response.text

            paths = {"straight": straight, "client": through_client, "service": through_service,
                     "api": through_api}
            for send in paths.values():
                timed(send, 20)  # warm connections, caches and the JIT-free interpreter alike
            samples: dict[str, list[float]] = {name: [] for name in paths}
            blocks = 6
            for _ in range(blocks):
                for name, send in paths.items():
                    samples[name] += timed(send, max(1, args.n // blocks))
            db.session.remove()
    finally:
        if portal is not None:
            portal.terminate()
        sim.terminate()
        sim.wait(timeout=10)

    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["straight"]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"sends per path: {len(samples['straight'])}")
    print(f"{'path':10} {'median ms':>10} {'p95 ms':>8} {'added ms':>9} {'x straight':>11}")
    for name, values in samples.items():
        print(f"{name:10} {medians[name]:10.2f} {statistics.quantiles(values, n=20)[18]:8.2f} "
              f"{medians[name] - base:9.2f} {medians[name] / base:11.2f}")
    added = medians["api"] - base
    print(f"POST /waha/sessions/:id/send adds {added:.2f} ms at the median over a straight send "
          f"(target <= 5 ms: {'met' if added <= 5 else 'MISSED'}); the service layer alone adds "
          f"{medians['service'] - medians['client']:.2f} ms over the bare client")


if __name__ == "__main__":
    main()
