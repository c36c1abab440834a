"""Benchmark: what the send queue costs the portal per message, and how well it keeps the campaign gap.

1. CPU: 10,000 campaign messages are queued (`enqueue_many`) and dispatched by one dispatcher (`outreach.run`)
   to a paired session on an in-process wahasim, gap 0 and a pace high enough not to wait. The CPU time of the
   dispatching thread is measured (`time.thread_time`: the simulator's threads, PostgreSQL and Redis are not in
   it, so simulator latency is excluded). Baseline in the same run: the same number of messages (--baseline)
   sent straight through `messages.send_message`, the work every send does with or without a queue. Printed:
   CPU per message for queueing, for planning and dispatching, the send service alone, and the queue's own share
   (planning and dispatching minus the send), each beside the target (< 1 ms per message).
2. Gaps: --gap-messages campaign messages with a fixed gap (--gap seconds), timed where they reach the simulator;
   every gap must be within 10 % of the configured one. Then a random gap (--gap .. 2 x --gap) stays in range.

    .venv/bin/python bench/send_queue.py [--n 10000] [--baseline 2000] [--gap 0.5] [--gap-messages 20]

Needs PostgreSQL and Redis as for the tests; uses BENCH_QUEUE_DATABASE_URL (default database portal_bench_queue,
reset here) and BENCH_REDIS_URL (default Redis db 9, flushed here).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on the path, and its name would hide the standard library's
# `queue` module from everything imported below: the folder goes, the project's root comes in.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import itertools  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

os.environ.setdefault(
    "BENCH_DATABASE_URL",
    os.environ.get("BENCH_QUEUE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/portal_bench_queue"),
)
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")

from bench.qr_viewers import API_KEY, environ, reset_database  # noqa: E402

CHAT = "491701234567@c.us"
TARGET_MS = 1.0


def _paired_session(app: Any, sim: Any) -> tuple[int, str]:
    from portal.extensions import db
    from portal.services import sessions
    from portal.services.servers import ensure_default_server
    from tests.builders import TEST_ACTOR, make_tenant

    with app.app_context():
        ensure_default_server()
        tenant = make_tenant("bench", send_rate_per_minute=6_000_000)
        session = sessions.create_session(tenant, TEST_ACTOR, name="Campaigns")
        deadline = time.monotonic() + 20
        while sessions.sync_session(tenant, session.id).status != "WORKING":
            if sessions.get_session(tenant, session.id).status == "SCAN_QR_CODE":
                sim.scan(session.external_name)
            if time.monotonic() > deadline:
                raise RuntimeError("the session never became WORKING")
            time.sleep(0.05)
        ids = tenant.id, session.id
        db.session.remove()
        return ids


def _items(session_id: str, n: int) -> list[dict[str, Any]]:
    return [{"session_id": session_id, "chat_id": CHAT, "body": f"Offer number {i}"} for i in range(n)]


def cpu_run(app: Any, tenant_id: int, session_id: str, n: int, baseline: int) -> dict[str, float]:
    from portal.extensions import db
    from portal.models import Tenant
    from portal.services import messages, outreach
    from tests.builders import TEST_ACTOR

    with app.app_context():
        tenant = db.session.get(Tenant, tenant_id)
        outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="UTC", gap_min=0, gap_max=0)
        # warm-up: connections, statement caches, the WAHA client
        for i in range(20):
            messages.send_message(tenant, session_id, TEST_ACTOR, to=CHAT, text=f"warm {i}", paced=False)

        def straight(label: str, count: int) -> float:
            started = time.thread_time()
            for i in range(count):
                text = f"Straight {label} {i}"
                messages.send_message(tenant, session_id, TEST_ACTOR, to=CHAT, text=text, paced=False)
            return (time.thread_time() - started) / count

        # The baseline is measured half before and half after the queue's run, so that the machine's drift over
        # the minutes of the run hits both sides alike.
        before = straight("before", baseline // 2)

        started = time.thread_time()
        items = _items(session_id, n)
        for start in range(0, n, 5000):
            outreach.enqueue_many(tenant, items[start : start + 5000], actor=TEST_ACTOR)
        enqueue_cpu = (time.thread_time() - started) / n

        started, wall = time.thread_time(), time.monotonic()
        sent = 0
        while sent < n:
            report = outreach.run(session_id, run_for=600, nap_max=1)
            sent += report.sent
            if report.sent == 0 and report.failed == 0:
                break
        dispatch_cpu = (time.thread_time() - started) / max(sent, 1)
        wall_s = time.monotonic() - wall
        after = straight("after", baseline - baseline // 2)
        db.session.remove()
    return {
        "send": (before + after) / 2,
        "send_before": before,
        "send_after": after,
        "enqueue": enqueue_cpu,
        "dispatch": dispatch_cpu,
        "sent": sent,
        "wall": wall_s,
    }


def gap_run(app: Any, tenant_id: int, session_id: str, sim: Any, gap: float, count: int, spread: bool) -> list[float]:
    from portal.extensions import db
    from portal.models import Tenant
    from portal.services import outreach
    from tests.builders import TEST_ACTOR

    arrivals: list[float] = []
    inner = sim._server.app

    def timed(environ_: dict, start_response: Any) -> Any:
        if environ_.get("PATH_INFO", "") == "/api/sendText":
            arrivals.append(time.monotonic())
        return inner(environ_, start_response)

    sim._server.app = timed
    try:
        with app.app_context():
            tenant = db.session.get(Tenant, tenant_id)
            high = gap * 2 if spread else gap
            outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="UTC", gap_min=gap, gap_max=high)
            outreach.enqueue_many(tenant, _items(session_id, count), actor=TEST_ACTOR)
            while len(arrivals) < count:
                report = outreach.run(session_id, run_for=600, nap_max=high + 1)
                if report.sent == 0:
                    break
            db.session.remove()
    finally:
        sim._server.app = inner
    return [b - a for a, b in itertools.pairwise(arrivals)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000, help="campaign messages queued and dispatched")
    parser.add_argument("--baseline", type=int, default=2_000, help="messages sent straight, for the baseline")
    parser.add_argument("--gap", type=float, default=0.5, help="configured gap of the pacing run (seconds)")
    parser.add_argument("--gap-messages", type=int, default=20)
    args = parser.parse_args()

    from wahasim.testing import SimServer

    sim = SimServer(api_key=API_KEY, starting_delay=0.02, ack_delay=3600)
    sim.start()
    try:
        app = reset_database(environ(sim.url))
        tenant_id, session_id = _paired_session(app, sim)
        cpu = cpu_run(app, tenant_id, session_id, args.n, args.baseline)
        fixed = gap_run(app, tenant_id, session_id, sim, args.gap, args.gap_messages, spread=False)
        spread = gap_run(app, tenant_id, session_id, sim, args.gap, args.gap_messages, spread=True)
    finally:
        sim.stop()

    ms = {k: v * 1000 for k, v in cpu.items() if k in ("send", "enqueue", "dispatch")}
    own = ms["enqueue"] + ms["dispatch"] - ms["send"]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{int(cpu['sent'])} of {args.n} queued messages sent in {cpu['wall']:.1f} s")
    print(
        f"baseline, send_message straight ({args.baseline} messages): {ms['send']:.3f} ms CPU per message "
        f"(half before the queue's run: {cpu['send_before'] * 1000:.3f}, half after: {cpu['send_after'] * 1000:.3f})"
    )
    print(f"queueing (enqueue_many):                   {ms['enqueue']:.3f} ms CPU per message")
    print(f"planning + dispatching (send included):    {ms['dispatch']:.3f} ms CPU per message")
    print(
        f"the queue's own cost (queueing + planning + dispatching - the send): {own:.3f} ms per message "
        f"(target < {TARGET_MS:.0f} ms: {'met' if own < TARGET_MS else 'MISSED'}); "
        f"{(ms['enqueue'] + ms['dispatch']) / ms['send']:.2f}x the send alone"
    )
    worst = max(abs(g - args.gap) / args.gap for g in fixed) if fixed else float("nan")
    print(
        f"fixed gap {args.gap} s, {len(fixed)} gaps: min {min(fixed):.3f} s, max {max(fixed):.3f} s, worst deviation "
        f"{worst * 100:.1f} % (target within 10 %: {'met' if worst <= 0.10 else 'MISSED'})"
    )
    low, high = args.gap, args.gap * 2
    inside = all(low * 0.9 <= g <= high * 1.1 for g in spread)
    print(
        f"random gap {low}-{high} s, {len(spread)} gaps: min {min(spread):.3f} s, max {max(spread):.3f} s "
        f"(target each within the range +-10 %: {'met' if inside else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
