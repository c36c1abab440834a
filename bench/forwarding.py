"""Benchmark: forwarding events to a tenant's endpoint with two real RQ workers (`flask worker`, jobs in the worker
process; `--fork` gives each job a work horse of its own).

1. Throughput: N pending first attempts (~1 KB events) to one fast local endpoint, sent by the drain jobs of two
   workers. Baselines in the same run: the same workers with one RQ job per attempt (the forwarding of before),
   and a bare loop of keep-alive POSTs from one process to the same endpoint. Target: >= 500 deliveries/s.
2. Retries: message events fed through the real receiver code at 300 events/s while the endpoint answers 500 for
   the first seconds and 200 after; every retry's spacing (sent_at minus the end of the attempt before) against
   the back-off it was scheduled with (due_at minus that end). Target: each within +-20 %.
3. Exactly what the endpoint received: every planned delivery answered 2xx once (none lost, none twice), and the
   endpoint's request count equal to the attempts the ledger shows as sent.

    .venv/bin/python bench/forwarding.py [--deliveries 20000] [--baseline 300] [--rate 300] [--seconds 15]

Needs PostgreSQL and Redis as for the tests (database portal_bench_forwarding and Redis db 3, reset here;
BENCH_FORWARDING_DATABASE_URL / BENCH_FORWARDING_REDIS_URL override them). The endpoint is an asyncio HTTP/1.1
server with keep-alive in its own process (`--serve PORT`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault(
    "BENCH_EVENTS_DATABASE_URL",
    os.environ.get(
        "BENCH_FORWARDING_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/portal_bench_forwarding"
    ),
)
os.environ.setdefault(
    "BENCH_EVENTS_REDIS_URL", os.environ.get("BENCH_FORWARDING_REDIS_URL", "redis://127.0.0.1:6379/3")
)

from bench._events_setup import (  # noqa: E402
    body_and_signature,
    environ,
    event,
    free_port,
    reset_database,
    seed_sessions,
    wait_for_port,
)

# ---------------------------------------------------------------------------------------------- the endpoint


def serve(port: int) -> None:
    """A fast webhook endpoint: counts requests and 2xx answers per webhook-id; 500 until `fail_until`."""
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    state = {"fail_until": 0.0}

    def answer(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
        )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ")[1]
                headers = {}
                for line in lines[1:]:
                    if b":" in line:
                        key, value = line.split(b":", 1)
                        headers[key.strip().lower()] = value.strip()
                length = int(headers.get(b"content-length", b"0"))
                if length:
                    await reader.readexactly(length)
                if path.startswith(b"/stats"):
                    answer(writer, 200, json.dumps(stats).encode())
                elif path.startswith(b"/reset"):
                    stats.clear()
                    state["fail_until"] = float(path.split(b"=")[1]) if b"=" in path else 0.0
                    answer(writer, 200, b"ok")
                else:
                    status = 500 if time.time() < state["fail_until"] else 200
                    counts = stats[headers.get(b"webhook-id", b"-").decode()]
                    counts[0] += 1
                    counts[1] += status == 200
                    answer(writer, status, b"ok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _endpoint_call(port: int, path: str) -> Any:
    import requests

    return (
        requests.get(f"http://127.0.0.1:{port}{path}", timeout=30).json()
        if path.startswith("/stats")
        else (requests.get(f"http://127.0.0.1:{port}{path}", timeout=30).text)
    )


# ---------------------------------------------------------------------------------------------- processes


def _app():
    from portal import create_app

    return create_app(environ())


def _start(command: list[str], count: int = 1) -> list[subprocess.Popen]:
    env = dict(os.environ, **environ(), PYTHONPATH=str(ROOT))
    return [
        subprocess.Popen(
            command + (["--name", f"bench-fwd-{n}-{os.getpid()}"] if "worker" in command else []),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for n in range(count)
    ]


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _scalar(app, sql: str, **params: Any) -> Any:
    import sqlalchemy as sa

    from portal.extensions import db

    with app.app_context():
        value = db.session.execute(sa.text(sql), params).scalar()
        db.session.remove()
        return value


def _wait_settled(app, timeout: float) -> float:
    started = time.perf_counter()
    while _scalar(
        app,
        "SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') "
        "+ (SELECT count(*) FROM webhook_events WHERE status = 'pending')",
    ):
        if time.perf_counter() - started > timeout:
            raise RuntimeError("deliveries were not settled in time")
        time.sleep(0.05)
    return time.perf_counter() - started


def _idle(app) -> None:
    from rq import Queue
    from rq.registry import StartedJobRegistry

    from portal.extensions import redis_store

    with app.app_context():
        for name in ("events", "forwarding"):
            queue = Queue(name, connection=redis_store.client)
            started = StartedJobRegistry(name, connection=redis_store.client)
            while len(queue) or started.count:
                time.sleep(0.05)


# ---------------------------------------------------------------------------------------------- 1. throughput


def _endpoint(app, tenant_id: int, url: str) -> int:
    from portal.models import Tenant
    from portal.services import forwarding
    from portal.services.audit import Actor

    with app.app_context():
        from portal.extensions import db

        tenant = db.session.get(Tenant, tenant_id)
        endpoint, _ = forwarding.create_endpoint(tenant, Actor(type="system", label="bench"), url=url, events=["*"])
        endpoint_id = endpoint.id
        db.session.remove()
        return endpoint_id


def _throughput(app, tenant_id: int, endpoint_id: int, url: str, count: int, per_attempt: bool) -> float:
    import sqlalchemy as sa

    from portal.extensions import db, redis_store
    from portal.jobs import QUEUE_FORWARDING, enqueue_many
    from portal.services import forwarding
    from portal.services.forwarding.drain import DRAIN_FLAG

    _idle(app)
    tag = f"{'one' if per_attempt else 'batch'}{time.time_ns()}"
    with app.app_context():
        payload = json.dumps({"type": "message", "payload": {"body": "x" * 900}})
        db.session.execute(
            sa.text(
                "INSERT INTO webhook_deliveries (tenant_id, endpoint_id, url, msg_id, event_type, payload, attempt, "
                "status, due_at, created_at) SELECT :t, :e, :url, 'msg_' || :tag || '_' || g, "
                "'message', CAST(:payload AS jsonb), 1, 'pending', now(), now() FROM generate_series(1, :n) g"
            ),
            {"t": tenant_id, "e": endpoint_id, "url": url, "tag": tag, "payload": payload, "n": count},
        )
        ids = list(
            db.session.scalars(
                sa.text("SELECT id FROM webhook_deliveries WHERE msg_id LIKE :p ORDER BY id"), {"p": f"msg_{tag}_%"}
            )
        )
        db.session.commit()
        started = time.perf_counter()
        if per_attempt:
            # nothing asks for a drain here: each attempt is its own job, as forwarding did before
            enqueue_many([("bench.worker_jobs.one_delivery", (i,)) for i in ids], queue=QUEUE_FORWARDING)
        else:
            redis_store.client.delete(DRAIN_FLAG)
            forwarding.request_drain(force=True)
            forwarding.request_drain(force=True)  # one per worker; their claims skip each other's rows
        db.session.remove()
    _wait_settled(app, timeout=900)
    return count / (time.perf_counter() - started)


def _bare_loop(port: int, seconds: float) -> float:
    import requests

    body = json.dumps({"type": "message", "payload": {"body": "x" * 900}})
    session = requests.Session()
    sent, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.post(f"http://127.0.0.1:{port}/hook", data=body, headers={"webhook-id": f"bare_{sent}"}, timeout=10)
        sent += 1
    return sent / (time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------- 2. retries


def _prepare(sessions: list[dict], count: int) -> list[tuple[str, bytes, str]]:
    prepared = []
    for n in range(count):
        session = sessions[n % len(sessions)]
        body, signature = body_and_signature(session, event(session))
        prepared.append((session["id"], body, signature))
    return prepared


def _feed(app, prepared: list[tuple[str, bytes, str]], rate: int) -> tuple[float, int]:
    """Message events through the receiver code (`events.ingest`) at `rate` per second; returns (seconds, errors)."""
    from portal.services import events

    errors: list[Exception] = []
    feeders = [prepared[n::4] for n in range(4)]

    def feed(part: list) -> None:
        with app.app_context():
            next_at = time.perf_counter()
            for session_id, body, signature in part:
                try:
                    events.ingest(session_id, body, signature)
                except Exception as exc:  # counted below
                    errors.append(exc)
                next_at += len(feeders) / rate
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)

    threads = [threading.Thread(target=feed, args=(part,)) for part in feeders]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, len(errors)


def _retry_spacing(app, endpoint_id: int) -> list[tuple[int, float, float]]:
    """(attempt, actual spacing, scheduled spacing) of every retry: from the end of the attempt before."""
    import sqlalchemy as sa

    from portal.extensions import db

    with app.app_context():
        rows = db.session.execute(
            sa.text(
                "SELECT r.attempt, "
                "extract(epoch FROM r.sent_at - (p.sent_at + p.duration_ms * interval '1 millisecond')), "
                "extract(epoch FROM r.due_at - (p.sent_at + p.duration_ms * interval '1 millisecond')) "
                "FROM webhook_deliveries r JOIN webhook_deliveries p "
                "ON p.msg_id = r.msg_id AND p.endpoint_id = r.endpoint_id AND p.attempt = r.attempt - 1 "
                "WHERE r.endpoint_id = :e AND r.attempt > 1 AND r.sent_at IS NOT NULL"
            ),
            {"e": endpoint_id},
        ).all()
        db.session.remove()
    return [(int(a), float(actual), float(scheduled)) for a, actual, scheduled in rows]


def _processing_lag(app, since_event: int) -> list[float]:
    """Seconds from each event's receipt to its stored message, for the events of the retry run: what handing the
    workers over to forwarding costs event processing."""
    import sqlalchemy as sa

    from portal.extensions import db

    with app.app_context():
        rows = db.session.scalars(
            sa.text(
                "SELECT extract(epoch FROM m.created_at - e.received_at) FROM webhook_events e "
                "JOIN messages m ON m.waha_message_id = e.payload->'payload'->>'id' "
                "WHERE e.event = 'message' AND e.id > :first"
            ),
            {"first": since_event},
        ).all()
        db.session.remove()
    return [float(r) for r in rows]


# ---------------------------------------------------------------------------------------------- 3. counts


def _count_check(app, port: int, endpoint_id: int, since_id: int) -> dict[str, int]:
    stats = _endpoint_call(port, "/stats")
    planned = _scalar(
        app,
        "SELECT count(DISTINCT msg_id) FROM webhook_deliveries WHERE endpoint_id = :e AND id > :s",
        e=endpoint_id,
        s=since_id,
    )
    sent_rows = _scalar(
        app,
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = :e AND id > :s AND sent_at IS NOT NULL",
        e=endpoint_id,
        s=since_id,
    )
    succeeded = _scalar(
        app,
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = :e AND id > :s AND status = 'succeeded'",
        e=endpoint_id,
        s=since_id,
    )
    ok_once = sum(1 for _, (_, oks) in stats.items() if oks == 1)
    return {
        "planned": int(planned),
        "succeeded_rows": int(succeeded),
        "ok_once": ok_once,
        "lost": int(planned) - sum(1 for _, (_, oks) in stats.items() if oks >= 1),
        "twice": sum(1 for _, (_, oks) in stats.items() if oks > 1),
        "requests": sum(n for n, _ in stats.values()),
        "sent_rows": int(sent_rows),
    }


def _max_id(app) -> int:
    return int(_scalar(app, "SELECT coalesce(max(id), 0) FROM webhook_deliveries"))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=20000, help="attempts for the throughput run")
    parser.add_argument("--baseline", type=int, default=300, help="attempts for the one-job-per-attempt run")
    parser.add_argument("--rate", type=int, default=300, help="events/s fed in the retry run")
    parser.add_argument("--seconds", type=int, default=15, help="length of the retry run's feed")
    parser.add_argument("--failing", type=float, default=8.0, help="seconds the endpoint answers 500 in that run")
    parser.add_argument("--fork", action="store_true", help="workers fork a work horse per job (flask worker --fork)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    print("preparing database ...", flush=True)
    reset_database()
    sessions = seed_sessions(20, tenants=1)
    app = _app()
    port = free_port()
    endpoint_process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[subprocess.Popen] = []
    scheduler: list[subprocess.Popen] = []
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}/hook"
        endpoint_id = _endpoint(app, sessions[0]["tenant_id"], url)
        flask = str(ROOT / ".venv/bin/flask")
        workers = _start([flask, "--app", "bench.ingest_app:app", "worker", *(["--fork"] if args.fork else [])], 2)
        time.sleep(3.0)
        print("bare loop: one process, keep-alive POSTs for 3 s ...", flush=True)
        bare = _bare_loop(port, 3.0)
        _endpoint_call(port, "/reset")
        print(f"baseline: {args.baseline} attempts, two workers, one job per attempt ...", flush=True)
        one_job = _throughput(app, sessions[0]["tenant_id"], endpoint_id, url, args.baseline, per_attempt=True)
        _endpoint_call(port, "/reset")
        since = _max_id(app)
        print(f"throughput: {args.deliveries} attempts, two workers, drain jobs ...", flush=True)
        drained = _throughput(app, sessions[0]["tenant_id"], endpoint_id, url, args.deliveries, per_attempt=False)
        counts_throughput = _count_check(app, port, endpoint_id, since)
        load_after_throughput = os.getloadavg()

        scheduler = _start([flask, "--app", "bench.ingest_app:app", "scheduler"])
        time.sleep(2.0)
        since = _max_id(app)
        since_event = int(_scalar(app, "SELECT coalesce(max(id), 0) FROM webhook_events"))
        prepared = _prepare(sessions, args.rate * args.seconds)
        _endpoint_call(port, f"/reset?fail_until={time.time() + args.failing}")
        print(
            f"retries: {args.rate} events/s for {args.seconds} s, the endpoint failing for the first "
            f"{args.failing:g} s ...",
            flush=True,
        )
        fed_in, errors = _feed(app, prepared, args.rate)
        _wait_settled(app, timeout=300)
        spacing = _retry_spacing(app, endpoint_id)
        lag = _processing_lag(app, since_event)
        counts_retry = _count_check(app, port, endpoint_id, since)
    finally:
        _stop(workers + scheduler)
        _stop([endpoint_process])

    print()
    print(
        "load average after the runs:",
        " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "  (after the throughput run:",
        " ".join(f"{x:.2f}" for x in load_after_throughput) + ")",
    )
    verdict = "OK" if drained >= 500 else "BELOW TARGET"
    print(f"drain jobs:            {drained:8.0f} deliveries/s   target >= 500   {verdict}   ({drained / 500:.1f}x)")
    print(f"one job per attempt:   {one_job:8.0f} deliveries/s   (baseline; drain jobs are {drained / one_job:.1f}x)")
    print(
        f"bare loop, 1 process:  {bare:8.0f} requests/s     (the endpoint's pace; drain jobs are {drained / bare:.2f}x)"
    )
    fed = args.rate * args.seconds
    print(f"retry run: fed {fed} events in {fed_in:.1f} s ({fed / fed_in:.0f}/s), {errors} ingest errors")
    if spacing:
        ratios = [actual / scheduled for _, actual, scheduled in spacing]
        late = [actual - scheduled for _, actual, scheduled in spacing]
        within = sum(1 for r in ratios if 0.8 <= r <= 1.2)
        by_attempt = defaultdict(list)
        for attempt, actual, scheduled in spacing:
            by_attempt[attempt].append(actual / scheduled)
        verdict = "OK" if within == len(ratios) else "OUTSIDE TARGET"
        print(
            f"retry spacing / scheduled back-off: p50 {statistics.median(ratios):.3f}  p99 {_pct(ratios, 0.99):.3f}  "
            f"min {min(ratios):.3f}  max {max(ratios):.3f}   within +-20 %: {within}/{len(ratios)}   {verdict}"
        )
        print(
            f"retry lateness: p50 {statistics.median(late):.2f} s  p99 {_pct(late, 0.99):.2f} s  max {max(late):.2f} s"
        )
        for attempt, values in sorted(by_attempt.items()):
            print(
                f"  attempt {attempt}: {len(values)} retries, spacing/scheduled {min(values):.3f} .. {max(values):.3f}"
            )
    else:
        print("retry spacing: no retries were made (the endpoint never failed?)")
    if lag:
        print(
            f"event processing in that run (receipt to stored message): p50 {statistics.median(lag):.2f} s  "
            f"p99 {_pct(lag, 0.99):.2f} s   (bench/worker_throughput.py targets p99 < 2 s without forwarding)"
        )
    for name, counts in (("throughput run", counts_throughput), ("retry run", counts_retry)):
        fine = counts["lost"] == 0 and counts["twice"] == 0 and counts["requests"] == counts["sent_rows"]
        print(
            f"{name}: {counts['planned']} deliveries planned, {counts['ok_once']} answered 2xx exactly once, "
            f"lost {counts['lost']}, 2xx twice {counts['twice']}; endpoint saw {counts['requests']} requests, "
            f"ledger shows {counts['sent_rows']} sent attempts ({counts['succeeded_rows']} succeeded)   "
            f"{'OK' if fine else 'MISMATCH'}"
        )


if __name__ == "__main__":
    main()
