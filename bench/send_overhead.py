"""Benchmark: what sending through the portal adds over sending straight to WAHA, layer by layer.

wahasim runs in its own process and the portal in another one, served as in production (gunicorn with
gunicorn.conf.py: gthread worker, keep-alive). Four ways of sending the same text to the same paired session, and
one bare request, are timed in alternating blocks, so drift of the machine hits them alike:

  1. straight   POST /api/sendText to wahasim with requests (the baseline)
  2. client     the portal's WahaClient.send_text (pool, breaker, pre-generated id, metrics), in this process
  3. service    portal.services.messages.send_message in this process: validation, pacing in Redis, the row
                and its audit event committed before the call, the WAHA call, the row updated after it
  4. hop        GET /healthz of the portal process: what serving any request costs (gunicorn, Flask, hooks)
  5. api        POST /waha/sessions/<id>/send to the portal process over loopback (bearer token, per-token rate
                limit, DTO, then the same service, the JSON answer)

Targets, printed beside the results: path 5 adds at most 3 ms at the median over the same call made straight to
wahasim, and the portal process spends at most 2.5 ms of CPU per send request (user + system time of the
gunicorn worker over the api blocks, divided by the requests; the machine's load moves it far less than the
latencies). Paths 2 to 4 show where the time goes. Each block gives its own medians, so one run also shows the
spread.

    .venv/bin/python bench/send_overhead.py [--n 600] [--blocks 6] [--server gunicorn|werkzeug]

Needs PostgreSQL and Redis as for the tests; uses BENCH_DATABASE_URL (default database portal_bench_sessions,
reset here) and Redis db 8.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.qr_viewers import API_KEY, environ, reset_database  # noqa: E402

CHAT = "491701234567@c.us"
PATHS = ("straight", "client", "service", "hop", "api")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process=None, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not _alive(process):
            raise RuntimeError(f"the process behind {url} exited")
        try:
            requests.get(url, timeout=2)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or the worker still booting
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _alive(process) -> bool:  # type: ignore[no-untyped-def]
    return process.is_alive() if hasattr(process, "is_alive") else process.poll() is None


def serve_with_werkzeug(env: dict[str, str], port: int) -> None:
    """The development server (closes every connection after one request)."""
    from werkzeug.serving import make_server

    from portal import create_app

    app = create_app(env)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # an access line per request would be measured too
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


def start_portal(server: str, env: dict[str, str], port: int, metrics_dir: str):  # type: ignore[no-untyped-def]
    if server == "werkzeug":
        process = multiprocessing.get_context("spawn").Process(
            target=serve_with_werkzeug, args=(env, port), daemon=True
        )
        process.start()
        return process
    # One worker: the client sends one request at a time, and a second process would only halve the warm-up.
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env={
            **os.environ,
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "1",
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return None


def serving_pid(server: str, portal) -> int | None:  # type: ignore[no-untyped-def]
    """The process that runs the portal's requests: the gunicorn worker (the master's only child)."""
    if server == "werkzeug":
        return portal.pid
    try:
        return int(Path(f"/proc/{portal.pid}/task/{portal.pid}/children").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def timed(send: Callable[[int], None], n: int) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        send(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=600, help="sends per path")
    parser.add_argument("--blocks", type=int, default=6, help="alternating blocks the sends are split into")
    parser.add_argument(
        "--server",
        choices=("gunicorn", "werkzeug"),
        default="gunicorn",
        help="how the portal process is served (production uses gunicorn)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    sim_port, portal_port = free_port(), free_port()
    waha_url, portal_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{portal_port}"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wahasim",
            "--port",
            str(sim_port),
            "--api-key",
            API_KEY,
            "--ack-delay",
            "600",
            "--log-level",
            "ERROR",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    metrics_dir = tempfile.mkdtemp(prefix="bench-send-metrics-")
    portal = None
    per_block = max(1, args.n // args.blocks)
    samples: dict[str, list[list[float]]] = {name: [] for name in PATHS}
    portal_cpu: dict[str, float] = {"hop": 0.0, "api": 0.0}  # CPU seconds the portal process spent per path
    api_cpu_blocks: list[float] = []  # ms of portal CPU per send request, block by block
    try:
        wait_for(waha_url + "/ping", sim)
        env = dict(environ(waha_url), API_RATE_LIMIT="1000000 per minute")
        app = reset_database(env)
        from portal.extensions import db
        from portal.services import messages, servers, sessions
        from portal.services.servers import ensure_default_server
        from tests.builders import TEST_ACTOR, make_tenant, make_token

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

            portal = start_portal(args.server, env, portal_port, metrics_dir)
            wait_for(portal_url + "/healthz", portal)

            waha = requests.Session()
            waha.headers["X-Api-Key"] = API_KEY
            api = requests.Session()
            api.headers["Authorization"] = f"Bearer {token}"

            def straight(i: int) -> None:
                response = waha.post(
                    f"{waha_url}/api/sendText", json={"session": external, "chatId": CHAT, "text": f"straight {i}"}
                )
                assert response.status_code == 201, response.text

            def through_client(i: int) -> None:
                client.send_text(external, CHAT, f"client {i}")

            def through_service(i: int) -> None:
                messages.send_message(tenant, session_id, TEST_ACTOR, to="+49 170 1234567", text=f"service {i}")

            def hop(i: int) -> None:
                response = api.get(f"{portal_url}/healthz")
                assert response.status_code == 200, response.text

            def through_api(i: int) -> None:
                response = api.post(
                    f"{portal_url}/waha/sessions/{session_id}/send", json={"to": "+491701234567", "text": f"api {i}"}
                )
                assert response.status_code == 200, response.text

            paths = dict(zip(PATHS, (straight, through_client, through_service, hop, through_api), strict=True))
            for send in paths.values():
                timed(send, 30)  # warm connections, prepared statements and caches alike
            worker = serving_pid(args.server, portal)
            for _ in range(args.blocks):
                for name, send in paths.items():
                    cpu_before = cpu_seconds(worker)
                    samples[name].append(timed(send, per_block))
                    cpu_after = cpu_seconds(worker)
                    if name in portal_cpu and cpu_before is not None and cpu_after is not None:
                        portal_cpu[name] += cpu_after - cpu_before
                        if name == "api":
                            api_cpu_blocks.append((cpu_after - cpu_before) / per_block * 1000)
            db.session.remove()
    finally:
        if portal is not None:
            portal.terminate()
        sim.terminate()
        sim.wait(timeout=10)
        if isinstance(portal, subprocess.Popen):
            portal.wait(timeout=10)
        shutil.rmtree(metrics_dir, ignore_errors=True)

    every = {name: [v for block in blocks for v in block] for name, blocks in samples.items()}
    medians = {name: statistics.median(values) for name, values in every.items()}
    base = medians["straight"]
    print(
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores; "
        f"portal served by {args.server}"
    )
    print(f"sends per path: {len(every['straight'])} in {args.blocks} blocks")
    print(f"{'path':10} {'median ms':>10} {'p95 ms':>8} {'added ms':>9} {'x straight':>11}")
    for name, values in every.items():
        print(
            f"{name:10} {medians[name]:10.2f} {statistics.quantiles(values, n=20)[18]:8.2f} "
            f"{medians[name] - base:9.2f} {medians[name] / base:11.2f}"
        )
    cpu_per_request = {name: seconds / len(every[name]) * 1000 for name, seconds in portal_cpu.items()}
    if all(portal_cpu.values()):
        print(
            "portal process CPU per request (ms, a figure the machine's load barely moves): "
            + ", ".join(f"{name} {value:.2f}" for name, value in cpu_per_request.items())
        )
    added_per_block = sorted(
        statistics.median(api) - statistics.median(straight)
        for api, straight in zip(samples["api"], samples["straight"], strict=True)
    )
    print("api added per block (ms): " + " ".join(f"{v:.2f}" for v in added_per_block))
    if api_cpu_blocks:
        print("api portal CPU per block, in order (ms): " + " ".join(f"{v:.2f}" for v in api_cpu_blocks))
    print(f"the service layer alone adds {medians['service'] - medians['client']:.2f} ms over the bare client")
    added = medians["api"] - base
    print()
    print(f"{'target':58} {'result':>16} {'target':>10}  verdict")
    _verdict(
        "POST /waha/sessions/:id/send, added median over straight",
        f"{added:.2f} ms",
        f"<= {ADDED_TARGET_MS:g} ms",
        added <= ADDED_TARGET_MS,
    )
    print(f"{'  (ratio api / straight)':58} {medians['api'] / base:15.2f}x")
    if all(portal_cpu.values()):
        api_cpu = cpu_per_request["api"]
        _verdict(
            "portal CPU per send request", f"{api_cpu:.2f} ms", f"<= {CPU_TARGET_MS:g} ms", api_cpu <= CPU_TARGET_MS
        )
        print(f"{'  (ratio api CPU / bare GET /healthz CPU)':58} {api_cpu / cpu_per_request['hop']:15.2f}x")


ADDED_TARGET_MS = 3.0  # what the API may add over a straight send, at the median
CPU_TARGET_MS = 2.5  # portal CPU per send request


def _verdict(what: str, result: str, target: str, met: bool) -> None:
    print(f"{what:58} {result:>16} {target:>10}  {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
