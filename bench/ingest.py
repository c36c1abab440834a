"""Benchmark: the WAHA webhook receiver under gunicorn against a bare endpoint of the same app, side by side.

Three runs with wrk against one gunicorn (2 workers, gthread, 8 threads each), same request shape each time:
  1. bare      POST /bench/bare with a signed 1.3 KB event (reads the body, answers 200)     -> baseline
  2. ingest    POST /webhooks/waha, one event per request (HMAC check, durable insert, queueing)
  3. batch     POST /webhooks/waha, 100 events per request
Targets, printed beside the results: ingest >= 65 % of bare requests/s; the gunicorn workers spend <= 0.6 ms of
CPU (user + system, all workers) per single-event request; batch >= 10x the events/s of one event per request.
Every event body is unique (a repeat would be a cheap no-op insert); the script checks the rows landed.

    apt-get install -y wrk        # once
    .venv/bin/python bench/ingest.py [--duration 4] [--rounds 7] [--connections 32] [--gthreads 8]

Needs PostgreSQL and Redis as for the tests (database portal_bench_events and Redis db 11, reset here).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._events_setup import (  # noqa: E402
    body_and_signature,
    environ,
    event,
    free_port,
    reset_database,
    seed_sessions,
    wait_for_port,
)

LUA = r"""
local counter = 1
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  target = args[3]
  sigs, bodies = {}, {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id - 1 then
      local tab = line:find("\t", 1, true)
      sigs[#sigs + 1] = line:sub(1, tab - 1)
      bodies[#bodies + 1] = line:sub(tab + 1)
    end
    i = i + 1
  end
  n = 0
end
function request()
  n = n + 1
  if n > #bodies then n = 1 end
  return wrk.format("POST", target, {["Content-Type"] = "application/json", ["X-Webhook-Hmac"] = sigs[n]},
                    bodies[n])
end
"""


def _write_bodies(path: Path, session: dict, count: int, per_request: int) -> None:
    with path.open("w") as out:
        for _ in range(count):
            payload = event(session) if per_request == 1 else [event(session) for _ in range(per_request)]
            body, signature = body_and_signature(session, payload)
            out.write(signature + "\t" + body.decode() + "\n")


PAUSE = [0.0]


def _wrk(
    port: int, target: str, bodies: Path, script: Path, duration: int, connections: int, threads: int
) -> tuple[float, int, int]:
    """(requests/s, requests, non-2xx responses) of one wrk run."""
    url = f"http://127.0.0.1:{port}"
    if PAUSE[0]:
        print(f"next: {target} for {duration} s", flush=True)
        time.sleep(PAUSE[0])
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
            "--",
            str(bodies),
            str(threads),
            target,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, total, int(bad.group(1)) if bad else 0


def _wait_for_workers(port: int, workers: int, timeout: float = 120.0) -> None:
    """Until the booted workers answer: the master listens long before a worker on a loaded machine has built
    the app, and a run started earlier would time out on every request."""
    import urllib.request

    deadline = time.monotonic() + timeout
    answered = 0
    while answered < workers * 4:
        if time.monotonic() > deadline:
            raise RuntimeError("the gunicorn workers did not answer")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                answered += answer.status == 200
        except OSError:
            time.sleep(0.2)


def _workers_cpu(master: int) -> float:
    """User + system CPU seconds of the gunicorn master's children so far (Linux /proc)."""
    total = 0.0
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return 0.0
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _stored_events() -> int:
    import sqlalchemy as sa

    from bench._events_setup import DB_URL

    engine = sa.create_engine(DB_URL)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar()
    engine.dispose()
    return int(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=4, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved bare/ingest rounds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--gthreads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds to wait before each run (profiling)")
    args = parser.parse_args()
    PAUSE[0] = args.pause
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")

    load_before = os.getloadavg()[0]
    print("preparing database and request bodies ...", flush=True)
    reset_database()
    [session] = seed_sessions(1)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    script = work / "post.lua"
    script.write_text(LUA)
    bare_bodies, batches = work / "bare.txt", work / "batch.txt"
    # Enough unique bodies for ~7,000 requests/s; a wrap would repeat ids and flatter the receiver (checked below).
    single_files = [work / f"single-{n}.txt" for n in range(args.rounds)]
    for path in single_files:  # a file per round: a run starts at the top of its file
        _write_bodies(path, session, args.duration * 4000, 1)
    _write_bodies(bare_bodies, session, 2000, 1)
    batch_seconds = 3
    _write_bodies(batches, session, batch_seconds * 450, 100)

    port = free_port()
    env = dict(os.environ, **environ())
    env["PYTHONPATH"] = str(ROOT)
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(args.gthreads),
            "--log-level",
            "warning",
            "bench.ingest_app:app",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    rounds = []
    try:
        wait_for_port(port)
        _wait_for_workers(port, args.workers)
        # warm-up: connections, key caches, first-request imports
        _wrk(port, "/bench/bare", bare_bodies, script, 2, args.connections, args.threads)
        target = f"/webhooks/waha?session={session['id']}"
        # Interleaved rounds: on a shared machine the load of other processes drifts; each ratio compares
        # neighbours in time, and the median of the rounds is reported.
        stored_before = _stored_events()
        single_total = single_bad = 0

        cpu = {"bare": [0.0, 0], "ingest": [0.0, 0]}  # CPU seconds of the workers and requests, per kind

        def measured(kind: str, path: str, bodies: Path) -> tuple[float, int, int]:
            before = _workers_cpu(server.pid)
            result = _wrk(port, path, bodies, script, args.duration, args.connections, args.threads)
            cpu[kind][0] += _workers_cpu(server.pid) - before
            cpu[kind][1] += result[1]
            return result

        def bare_run() -> tuple[float, int, int]:
            return measured("bare", "/bench/bare", bare_bodies)

        def ingest_run(bodies: Path) -> tuple[float, int, int]:
            return measured("ingest", target, bodies)

        for n, singles in enumerate(single_files):
            # Alternate which goes first, so a drift in background load does not favour one side.
            if n % 2 == 0:
                bare_rate, _, bare_bad = bare_run()
                single_rate, total, bad = ingest_run(singles)
            else:
                single_rate, total, bad = ingest_run(singles)
                bare_rate, _, bare_bad = bare_run()
            single_total, single_bad = single_total + total, single_bad + bad
            rounds.append((bare_rate, single_rate, bare_bad))
        single_stored = _stored_events() - stored_before
        before = _stored_events()
        batch_rate, batch_total, batch_bad = _wrk(
            port, target, batches, script, batch_seconds, min(args.connections, 8), args.threads
        )
        batch_stored = _stored_events() - before
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")
    for n, (bare_rate, single_rate, bare_bad) in enumerate(rounds, 1):
        print(
            f"round {n}: bare {bare_rate:7.0f} requests/s (non-2xx {bare_bad})   ingest 1 event/request "
            f"{single_rate:7.0f} requests/s   ratio {single_rate / bare_rate:6.1%}"
        )
    print(f"ingest totals: {single_total} requests, non-2xx {single_bad}, {single_stored} events stored")
    print(
        f"ingest, 100 events/request {batch_rate:7.0f} requests/s = {batch_rate * 100:.0f} events/s   "
        f"(non-2xx: {batch_bad}; {batch_stored} of {batch_total * 100} events stored)"
    )
    print()
    ratio = statistics.median(single / bare for bare, single, _ in rounds)
    single_median = statistics.median(single for _, single, _ in rounds)
    batch_ratio = batch_rate * 100 / single_median
    cpu_ms = {kind: seconds / max(1, n) * 1000 for kind, (seconds, n) in cpu.items()}
    print(f"{'target':40} {'result':>12} {'target':>10}  verdict")
    _verdict("ingest / bare requests/s (median)", f"{ratio:.1%}", f">= {RATIO_TARGET:.0%}", ratio >= RATIO_TARGET)
    _verdict(
        "worker CPU per single-event request",
        f"{cpu_ms['ingest']:.3f} ms",
        f"<= {CPU_TARGET_MS:g} ms",
        0 < cpu_ms["ingest"] <= CPU_TARGET_MS,
    )
    print(f"{'  (bare endpoint, for comparison)':40} {cpu_ms['bare']:9.3f} ms")
    _verdict("batch / single events/s", f"{batch_ratio:.1f}x", f">= {BATCH_TARGET:g}x", batch_ratio >= BATCH_TARGET)
    if single_stored < single_total - single_bad or batch_stored < (batch_total - batch_bad) * 100:
        print("WARNING: fewer rows than accepted requests: request bodies repeated (raise the body count)")


RATIO_TARGET = 0.65  # single-event ingest against the bare endpoint, requests/s
CPU_TARGET_MS = 0.6  # worker CPU per single-event request
BATCH_TARGET = 10.0  # events/s of 100-event batches against single events


def _verdict(what: str, result: str, target: str, met: bool) -> None:
    print(f"{what:40} {result:>12} {target:>10}  {'OK' if met else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
