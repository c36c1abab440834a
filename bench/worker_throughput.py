"""Benchmark: event processing by two RQ workers, from accepted (row committed) to stored (message row).

1. Throughput: N pending `message` events (spread over 50 sessions) are drained by two worker processes
   (`flask worker`), batch jobs as the receiver queues them. Baseline in the same run: the same workers with one
   RQ job per event (what a naive receiver would queue). Target: >= 1,000 events/s.
2. Latency: events fed through the real receiver code (`services.events.ingest`, signature check, insert, drain
   signal) at 300 events/s while the two workers run; p50/p99 of message.created_at - event.received_at.
   Target: p99 < 2 s.

    .venv/bin/python bench/worker_throughput.py [--events 20000] [--rate 300] [--seconds 20] [--fork]

Needs PostgreSQL and Redis as for the tests (database portal_bench_events and Redis db 11, reset here).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._events_setup import body_and_signature, environ, event, reset_database, seed_sessions  # noqa: E402


def _app():
    from portal import create_app

    return create_app(environ())


def _start_workers(count: int, fork: bool) -> list[subprocess.Popen]:
    env = dict(os.environ, **environ(), PYTHONPATH=str(ROOT))
    command = [str(ROOT / ".venv/bin/flask"), "--app", "bench.ingest_app:app", "worker", "--queues", "events"]
    if fork:
        command.append("--fork")
    workers = [
        subprocess.Popen(
            command + ["--name", f"bench-{n}-{os.getpid()}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for n in range(count)
    ]
    time.sleep(3.0)  # imports and the first Redis connection
    return workers


def _stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def _pending(app) -> int:
    import sqlalchemy as sa

    from portal.extensions import db

    with app.app_context():
        count = db.session.execute(sa.text("SELECT count(*) FROM webhook_events WHERE status = 'pending'")).scalar()
        db.session.remove()
        return int(count)


def _insert_pending(app, sessions: list[dict], count: int) -> None:
    """Store `count` events without queueing anything (as if Redis had been down)."""
    from portal.services import events

    with app.app_context():
        per_request = 500
        for start in range(0, count, per_request):
            session = sessions[(start // per_request) % len(sessions)]
            batch = [event(sessions[(start + n) % len(sessions)]) for n in range(min(per_request, count - start))]
            # each request belongs to one session; group by the session the events name
            by_session: dict[str, list] = {}
            for item in batch:
                by_session.setdefault(item["metadata"]["portal.session_id"], []).append(item)
            for session_id, items in by_session.items():
                session = next(s for s in sessions if s["id"] == session_id)
                body, _ = body_and_signature(session, items)
                events._store(events._Incoming.of(items, body, None), session["id"], session["tenant_id"], "pending")


def _wait_drained(app, timeout: float) -> float:
    started = time.perf_counter()
    while _pending(app):
        if time.perf_counter() - started > timeout:
            raise RuntimeError("events were not drained in time")
        time.sleep(0.05)
    return time.perf_counter() - started


def _idle(app) -> None:
    """Wait until no job is queued or running, so one phase's jobs never work on the next phase's events."""
    from rq import Queue
    from rq.registry import StartedJobRegistry

    from portal.extensions import redis_store

    with app.app_context():
        queue = Queue("events", connection=redis_store.client)
        started = StartedJobRegistry("events", connection=redis_store.client)
        while len(queue) or started.count:
            time.sleep(0.05)


def _throughput(app, sessions: list[dict], count: int, per_event: bool) -> float:
    from portal.extensions import redis_store
    from portal.jobs import QUEUE_EVENTS, enqueue_many
    from portal.services import events

    _idle(app)
    _insert_pending(app, sessions, count)
    with app.app_context():
        started = time.perf_counter()
        if per_event:
            import sqlalchemy as sa

            from portal.extensions import db

            ids = db.session.scalars(sa.text("SELECT id FROM webhook_events WHERE status = 'pending' ORDER BY id"))
            calls = [("bench.worker_jobs.one_event", (event_id,)) for event_id in ids]
            db.session.remove()
            started = time.perf_counter()
            enqueue_many(calls, queue=QUEUE_EVENTS)
        else:
            redis_store.client.delete(events.DRAIN_FLAG)
            events.request_drain(force=True)
            events.request_drain(force=True)  # one per worker; each drains the sessions the other does not hold
    _wait_drained(app, timeout=600)
    return count / (time.perf_counter() - started)


def _latency(app, sessions: list[dict], rate: int, seconds: int) -> list[float]:
    import sqlalchemy as sa

    from portal.extensions import db
    from portal.services import events

    total = rate * seconds
    prepared = []
    for n in range(total):
        session = sessions[n % len(sessions)]
        body, signature = body_and_signature(session, event(session))
        prepared.append((session["id"], body, signature))
    errors = []

    def feed(part: list) -> None:
        with app.app_context():
            interval = len(feeders) / rate
            next_at = time.perf_counter()
            for session_id, body, signature in part:
                try:
                    events.ingest(session_id, body, signature)
                except Exception as exc:  # reported below
                    errors.append(exc)
                next_at += interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)

    with app.app_context():
        first_id = db.session.execute(sa.text("SELECT coalesce(max(id), 0) FROM webhook_events")).scalar()
        db.session.remove()
    feeders = [prepared[n::4] for n in range(4)]
    threads = [threading.Thread(target=feed, args=(part,)) for part in feeders]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fed_in = time.perf_counter() - started
    _wait_drained(app, timeout=120)
    if errors:
        print(f"  {len(errors)} ingest errors, first: {errors[0]!r}")
    print(f"  fed {total} events in {fed_in:.1f} s ({total / fed_in:.0f}/s)")
    with app.app_context():
        rows = (
            db.session.execute(
                sa.text(
                    "SELECT extract(epoch FROM m.created_at - e.received_at) FROM webhook_events e "
                    "JOIN messages m ON m.waha_message_id = e.payload->'payload'->>'id' "
                    "WHERE e.event = 'message' AND e.id > :first"
                ),
                {"first": first_id},
            )
            .scalars()
            .all()
        )
        db.session.remove()
    return [float(r) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000, help="events for the throughput run")
    parser.add_argument("--baseline-events", type=int, default=300, help="events for the one-job-per-event run")
    parser.add_argument("--rate", type=int, default=300, help="events/s fed in the latency run")
    parser.add_argument("--seconds", type=int, default=20, help="length of the latency run")
    parser.add_argument("--fork", action="store_true", help="workers fork a work horse per job (flask worker --fork)")
    args = parser.parse_args()

    print("preparing database ...", flush=True)
    reset_database()
    sessions = seed_sessions(50, tenants=10)
    app = _app()
    workers = _start_workers(2, args.fork)
    try:
        print(f"throughput: {args.events} events, two workers, batch jobs ...", flush=True)
        batched = _throughput(app, sessions, args.events, per_event=False)
        print(f"baseline: {args.baseline_events} events, two workers, one job per event ...", flush=True)
        per_event = _throughput(app, sessions, args.baseline_events, per_event=True)
        print(f"latency: {args.rate} events/s for {args.seconds} s through the receiver ...", flush=True)
        _idle(app)
        latencies = _latency(app, sessions, args.rate, args.seconds)
    finally:
        _stop_workers(workers)

    print()
    print(
        f"batch jobs:          {batched:8.0f} events/s   target >= 1,000   "
        f"{'OK' if batched >= 1000 else 'BELOW TARGET'}   ({batched / 1000:.1f}x target)"
    )
    print(f"one job per event:   {per_event:8.0f} events/s   (baseline; batch jobs are {batched / per_event:.1f}x)")
    if latencies:
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"latency at {args.rate}/s:   p50 {p50 * 1000:6.0f} ms   p99 {p99 * 1000:6.0f} ms   "
            f"({len(latencies)} events)   target p99 < 2,000 ms   {'OK' if p99 < 2 else 'ABOVE TARGET'}   "
            f"({p99 / 2:.2f} of target)"
        )


if __name__ == "__main__":
    main()
