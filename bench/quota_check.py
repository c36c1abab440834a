"""Benchmark: what the plan's quota check adds to a send (target: < 0.5 ms at the median, one Redis round trip).

wahasim runs in its own process; the portal's send service runs in this one. In alternating blocks, the same
text goes to the same paired session through `portal.services.messages.send_message`:

  1. without   the send's gates without the quota for the block (the baseline): the pacing slot taken on its
               own, the WAHA server's breaker asked by the call, as a send without quotas would
  2. with      the send as shipped: `quotas.take_send` (one Lua call: the pacing slot, the check and count of
               day, month and session, and the breaker's verdict for the call)

(with the CPU time this process spends per send: the figure the machine's load moves least) and, in the same
blocks, the check alone (`quotas.take_send` without pacing or breaker, under limits it never reaches), the
cleanest figure of what the quota's Lua work costs. The tenant has daily and monthly limits, so the check does all
its work. Since the quota rides in the round trip the pacing slot takes anyway, "with" may cost less than
"without", which makes a round trip more for the breaker.

    .venv/bin/python bench/quota_check.py [--n 1200] [--blocks 6]

Needs PostgreSQL and Redis as for the tests; uses BENCH_QUOTA_DATABASE_URL (default database portal_quota_bench,
reset here) and BENCH_QUOTA_REDIS_URL (default Redis db 9, flushed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import qr_viewers  # noqa: E402
from bench.send_overhead import free_port, timed, wait_for  # noqa: E402

DB_URL = os.environ.get("BENCH_QUOTA_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/portal_quota_bench")
REDIS_URL = os.environ.get("BENCH_QUOTA_REDIS_URL", "redis://127.0.0.1:6379/9")
API_KEY = "bench-key"
TARGET_MS = 0.5


def reset_database(env: dict[str, str]) -> Any:
    return qr_viewers.reset_database(env, DB_URL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1200, help="sends per path")
    parser.add_argument("--blocks", type=int, default=6, help="alternating blocks the sends are split into")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    sim_port = free_port()
    waha_url = f"http://127.0.0.1:{sim_port}"
    sim = subprocess.Popen(
        [sys.executable, "-m", "wahasim", "--port", str(sim_port), "--api-key", API_KEY, "--log-level", "ERROR"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    per_block = max(1, args.n // args.blocks)
    samples: dict[str, list[list[float]]] = {"without": [], "with": [], "check": []}
    cpu = dict.fromkeys(samples, 0.0)  # CPU seconds of this process per path (the load moves it far less)
    try:
        wait_for(waha_url + "/ping", sim)
        from portal.config import environ_for_tests

        env = environ_for_tests(
            DATABASE_URL=DB_URL, REDIS_URL=REDIS_URL, WAHA_BASE_URL=waha_url, WAHA_API_KEY=API_KEY, LOG_LEVEL="ERROR"
        )
        app = reset_database(env)
        from portal.extensions import db
        from portal.services import messages, pacing, quotas, sessions
        from portal.services.messages import sending
        from portal.services.servers import ensure_default_server
        from tests.builders import TEST_ACTOR, make_tenant

        with app.app_context():
            ensure_default_server()
            tenant = make_tenant("bench", send_rate_per_minute=10_000_000)
            tenant.max_messages_per_day = tenant.max_messages_per_month = 10**9
            db.session.commit()
            session = sessions.create_session(tenant, TEST_ACTOR, name="Send")
            requests.post(f"{waha_url}/_sim/sessions/{session.external_name}/scan", json={}, timeout=5)
            deadline = time.monotonic() + 10
            while sessions.sync_session(tenant, session.id).status != "WORKING":
                if time.monotonic() > deadline:
                    raise RuntimeError("the session did not reach WORKING")
                time.sleep(0.05)
            session_id = session.id
            shipped = sending.take_send
            quotas.limit_of(tenant, "messages_per_day")  # the plan is in the process cache, as in production

            def no_check(tenant: Any, session_id: str, *, paced: bool = False, breaker: Any = None) -> Any:
                if paced:
                    pacing.acquire(session_id, tenant.send_rate_per_minute)
                return quotas.SendGates(None, None)

            def send(i: int) -> None:
                messages.send_message(tenant, session_id, TEST_ACTOR, to="+49 170 1234567", text=f"bench {i}")

            def check(i: int) -> None:
                shipped(tenant, session_id)  # the quota alone: no pacing, no breaker

            paths: dict[str, tuple[Callable[[int], None], Any]] = {
                "without": (send, no_check),
                "with": (send, shipped),
                "check": (check, shipped),
            }
            for fn, take in paths.values():
                sending.take_send = take  # type: ignore[assignment]
                timed(fn, 50)  # warm connections, prepared statements and caches alike
            for _ in range(args.blocks):
                for name, (fn, take) in paths.items():
                    sending.take_send = take  # type: ignore[assignment]
                    cpu_before = time.process_time()
                    samples[name].append(timed(fn, per_block))
                    cpu[name] += time.process_time() - cpu_before
            sending.take_send = shipped  # type: ignore[assignment]
            db.session.remove()
    finally:
        sim.terminate()
        sim.wait(timeout=10)

    every = {name: [v for block in blocks for v in block] for name, blocks in samples.items()}
    medians = {name: statistics.median(values) for name, values in every.items()}
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")
    print(f"sends per path: {len(every['with'])} in {args.blocks} blocks")
    print(f"{'path':10} {'median ms':>10} {'p95 ms':>8}")
    for name, values in every.items():
        print(f"{name:10} {medians[name]:10.3f} {statistics.quantiles(values, n=20)[18]:8.3f}")
    per_block = [
        statistics.median(w) - statistics.median(wo) for w, wo in zip(samples["with"], samples["without"], strict=True)
    ]
    print("with - without per block (ms): " + " ".join(f"{v:.3f}" for v in sorted(per_block)))
    added = medians["with"] - medians["without"]
    print(f"send with the check / without: {medians['with'] / medians['without']:.3f}x")
    cpu_ms = {name: seconds / len(every[name]) * 1000 for name, seconds in cpu.items()}
    print("CPU of this process per call (ms): " + ", ".join(f"{k} {v:.3f}" for k, v in cpu_ms.items()))
    print(f"added CPU per send, with - without:         {cpu_ms['with'] - cpu_ms['without']:.3f} ms")
    print()
    print(f"added per send, median of with - without:   {added:.3f} ms")
    ok = medians["check"] < TARGET_MS
    verdict = "met" if ok else "MISSED"
    print(f"the check alone, median:                    {medians['check']:.3f} ms  (< {TARGET_MS} ms: {verdict})")


if __name__ == "__main__":
    main()
