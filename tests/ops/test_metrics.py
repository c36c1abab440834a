"""/metrics: access rules, and counters that move with real requests, WAHA calls, events and jobs."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select

from portal import metrics
from portal.extensions import db, redis_store
from portal.models import Message, WahaServer, WahaSession
from portal.queue import (
    JOB_CHECK_SERVERS,
    JOB_FETCH_MEDIA,
    JOB_SEND_PASSWORD_RESET,
    QUEUE_EVENTS,
    QUEUE_MAINTENANCE,
    InProcessRunner,
    enqueue,
)
from portal.services import media
from portal.services import servers as servers_service
from portal.services.audit import SYSTEM
from tests.builders import make_tenant, stored_message
from tests.helpers import closed_port, silent_listener

ROOT = Path(__file__).resolve().parents[2]


def scrape(client: Any, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics answer, keyed by (sample name, sorted labels)."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_by_route_template_not_raw_path(client: Any) -> None:
    before = scrape(client)
    for path in ("/static/css/portal.css", "/static/js/portal.js", "/no/such/page/42"):
        client.get(path)

    after = scrape(client)

    route = "/static/<path:filename>"
    assert (
        value(after, "portal_http_requests_total", method="GET", route=route, status="200")
        - value(before, "portal_http_requests_total", method="GET", route=route, status="200")
        == 2
    )
    assert (
        value(after, "portal_http_requests_total", method="GET", route="unmatched", status="404")
        - value(before, "portal_http_requests_total", method="GET", route="unmatched", status="404")
        == 1
    )
    assert not any("/static/css" in dict(labels).get("route", "") for _, labels in after)


def test_metrics_time_requests_in_a_histogram(client: Any) -> None:
    before = scrape(client)
    client.get("/healthz")

    after = scrape(client)

    name = "portal_http_request_duration_seconds_count"
    assert value(after, name, method="GET", route="/healthz") - value(before, name, method="GET", route="/healthz") == 1


def test_metrics_count_waha_calls_with_their_latency(ctx: Any, client: Any) -> None:
    server = db.session.scalars(select(WahaServer)).first()
    before = scrape(client)

    servers_service.client_for(server).version()

    after = scrape(client)
    assert (
        value(after, "portal_waha_calls_total", method="version", outcome="ok")
        - value(before, "portal_waha_calls_total", method="version", outcome="ok")
        == 1
    )
    assert (
        value(after, "portal_waha_call_duration_seconds_count", method="version")
        - value(before, "portal_waha_call_duration_seconds_count", method="version")
        == 1
    )
    assert value(after, "portal_waha_call_duration_seconds_sum", method="version") > value(
        before, "portal_waha_call_duration_seconds_sum", method="version"
    )


def test_metrics_count_failed_waha_calls_by_error_class(ctx: Any, client: Any) -> None:
    server = servers_service.add_server("gone", f"http://127.0.0.1:{closed_port()}", "key", SYSTEM)
    from portal.waha import errors as waha_errors

    with pytest.raises(waha_errors.WahaUnavailable):
        servers_service.client_for(server).list_sessions()

    after = scrape(client)
    assert value(after, "portal_waha_calls_total", method="list_sessions", outcome="WahaUnavailable") == 1


def test_webhook_event_counters_add_up_across_processes(ctx: Any, client: Any, _environ: dict[str, str]) -> None:
    metrics.webhook_events.labels("processed").inc(2)
    script = textwrap.dedent("""
        import os
        from portal import create_app
        from portal import metrics
        app = create_app({k: v for k, v in os.environ.items()})
        metrics.webhook_events.labels("processed").inc(5)
        metrics.webhook_events.labels("failed").inc()
    """)
    subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=_environ | {"PATH": "/usr/bin:/bin"}, check=True, timeout=60
    )

    after = scrape(client)

    assert value(after, "portal_webhook_events_total", outcome="processed") == 7
    assert value(after, "portal_webhook_events_total", outcome="failed") == 1


def test_shared_counters_never_wait_for_redis_and_keep_their_counts_through_an_outage(
    ctx: Any, client: Any, monkeypatch: Any
) -> None:
    with silent_listener() as port:
        hung = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.3, retry=Retry(NoBackoff(), 0))
        monkeypatch.setattr(redis_store, "_client", hung)
        started = time.monotonic()
        for _ in range(21):
            metrics.webhook_events.labels("processed").inc()  # counted in this process: no Redis on the way
        counting = time.monotonic() - started
        started = time.monotonic()
        flushed = metrics.flush()  # the hung Redis costs the flush its timeout at most, then it is paused
        flushing = time.monotonic() - started
        monkeypatch.undo()

    assert counting < 0.1, counting
    assert not flushed and flushing < 1.0, flushing
    # The app's own Redis is another client, tried at once: nothing counted during the outage is lost.
    assert value(scrape(client), "portal_webhook_events_total", outcome="processed") == 21


def test_counts_of_an_idle_process_reach_the_shared_hash_within_the_flush_interval(ctx: Any) -> None:
    metrics.webhook_events.labels("processed").inc(3)
    deadline = time.monotonic() + metrics.FLUSH_SECONDS + 2
    stored = None
    while time.monotonic() < deadline:
        stored = redis_store.client.hget(metrics.SHARED_KEY, "webhook_events\x1fprocessed")
        if stored is not None:
            break
        time.sleep(0.05)

    assert stored is not None and float(stored) == 3  # flushed by the process's own thread, no scrape needed


def test_webhook_event_counter_files_unknown_outcomes_as_other(client: Any) -> None:
    metrics.webhook_events.labels("exploded-in-a-new-way").inc()

    after = scrape(client)

    assert value(after, "portal_webhook_events_total", outcome="other") == 1
    assert not any(dict(labels).get("outcome") == "exploded-in-a-new-way" for _, labels in after)


def test_metrics_show_queue_depth_and_finished_jobs(client: Any, run_jobs: Any, app: Any) -> None:
    with app.app_context():
        enqueue(JOB_CHECK_SERVERS, queue=QUEUE_MAINTENANCE)
    queued = scrape(client)

    run_jobs()

    done = scrape(client)
    assert value(queued, "portal_rq_jobs", queue=QUEUE_MAINTENANCE, state="queued") == 1
    assert value(done, "portal_rq_jobs", queue=QUEUE_MAINTENANCE, state="queued") == 0
    assert value(done, "portal_rq_jobs", queue=QUEUE_MAINTENANCE, state="finished") == 1
    assert value(done, "portal_rq_jobs", queue=QUEUE_MAINTENANCE, state="failed") == 0


# ---- jobs: each one counts its outcome and writes its name and id into every log line

NO_SUCH_USER = 987654321  # a password reset for it logs "no reset mail" and succeeds


def _log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def _jobs_total(samples: dict, job: str, outcome: str) -> float:
    return value(samples, "portal_jobs_total", job=job, outcome=outcome)


def test_a_job_enqueued_while_the_process_stops_is_not_an_error(app: Any, json_log: io.StringIO) -> None:
    # At shutdown the pool refuses new work; the schedule and the jobs still running must not log errors for it.
    runner = InProcessRunner(app, workers=1)
    runner.pool.shutdown(wait=True)

    runner.enqueue(JOB_SEND_PASSWORD_RESET, NO_SUCH_USER, queue=QUEUE_MAINTENANCE)

    lines = [line for line in _log_lines(json_log) if JOB_SEND_PASSWORD_RESET in line["message"]]
    assert [line["level"] for line in lines] == ["INFO"] and "process is stopping" in lines[0]["message"]


def test_a_job_run_in_process_counts_its_success_and_logs_under_a_job_id_of_its_own(
    app: Any, client: Any, json_log: io.StringIO
) -> None:
    runner = InProcessRunner(app, workers=1)
    runner.enqueue(JOB_SEND_PASSWORD_RESET, NO_SUCH_USER, queue=QUEUE_MAINTENANCE)
    runner.pool.shutdown(wait=True)

    samples = scrape(client)

    [line] = [
        line for line in _log_lines(json_log) if line["message"].startswith(f"no reset mail for user {NO_SUCH_USER}")
    ]
    assert line["job"] == JOB_SEND_PASSWORD_RESET
    assert re.fullmatch(r"[0-9a-f]{32}", line["job_id"])
    assert _jobs_total(samples, JOB_SEND_PASSWORD_RESET, "succeeded") == 1
    assert _jobs_total(samples, JOB_SEND_PASSWORD_RESET, "failed") == 0
    scrape_line = [line for line in _log_lines(json_log) if line["logger"] == "portal.access"][-1]
    assert "job" not in scrape_line and "job_id" not in scrape_line  # the job's fields end with the job


def test_a_job_run_by_an_rq_worker_counts_its_success_and_logs_under_its_rq_job_id(
    app: Any, client: Any, run_jobs: Any, json_log: io.StringIO
) -> None:
    with app.app_context():
        queued = enqueue(JOB_SEND_PASSWORD_RESET, NO_SUCH_USER, queue=QUEUE_MAINTENANCE)

    assert run_jobs() == 1

    [line] = [
        line for line in _log_lines(json_log) if line["message"].startswith(f"no reset mail for user {NO_SUCH_USER}")
    ]
    assert (line["job"], line["job_id"]) == (JOB_SEND_PASSWORD_RESET, queued.id)
    samples = scrape(client)
    assert _jobs_total(samples, JOB_SEND_PASSWORD_RESET, "succeeded") == 1
    assert _jobs_total(samples, JOB_SEND_PASSWORD_RESET, "failed") == 0


def test_a_failing_job_counts_retried_while_rq_will_run_it_again_and_failed_when_it_will_not(
    ctx: Any, client: Any, run_jobs: Any, json_log: io.StringIO
) -> None:
    tenant = make_tenant("media-jobs")
    gone = servers_service.add_server("gone", f"http://127.0.0.1:{closed_port()}", "key", SYSTEM)
    session = WahaSession(
        tenant_id=tenant.id, server_id=gone.id, name="pics", external_name="pics", status="WORKING", hmac_key="k" * 32
    )
    db.session.add(session)
    db.session.commit()
    url = f"{gone.base_url}/api/files/pics/photo.png"
    message = stored_message(
        tenant, session, direction="in", media={"status": "pending", "mimetype": "image/png", "source": url}
    )
    media.queue_downloads([(message.id, url)])  # with RQ's retry policy for downloads
    last_try = enqueue(JOB_FETCH_MEDIA, message.id, url, queue=QUEUE_EVENTS)  # no retry policy

    run_jobs()  # WAHA is unreachable: both downloads raise

    samples = scrape(client)
    assert _jobs_total(samples, JOB_FETCH_MEDIA, "retried") == 1
    assert _jobs_total(samples, JOB_FETCH_MEDIA, "failed") == 1
    assert _jobs_total(samples, JOB_FETCH_MEDIA, "succeeded") == 0
    failures = [line for line in _log_lines(json_log) if line["message"].startswith("job fetch_media failed")]
    assert [line["job"] for line in failures] == [JOB_FETCH_MEDIA, JOB_FETCH_MEDIA]
    assert failures[0]["message"].startswith("job fetch_media failed; it will be retried")
    assert failures[1]["job_id"] == last_try.id and "retried" not in failures[1]["message"]


def test_metrics_show_sessions_and_messages_from_the_database(ctx: Any, client: Any) -> None:
    tenant = make_tenant("metrics")
    server = db.session.scalars(select(WahaServer)).first()
    for n, status in enumerate(("WORKING", "WORKING", "SCAN_QR_CODE")):
        db.session.add(
            WahaSession(
                tenant_id=tenant.id,
                server_id=server.id,
                name=f"s{n}",
                external_name=f"x{n}",
                status=status,
                hmac_key="k" * 32,
            )
        )
    db.session.flush()
    session_id = db.session.scalars(select(WahaSession.id)).first()
    for direction, status in (("out", "READ"), ("out", "READ"), ("out", "ERROR"), ("in", "SERVER")):
        db.session.add(
            Message(tenant_id=tenant.id, session_id=session_id, direction=direction, chat_id="1@c.us", status=status)
        )
    db.session.commit()

    samples = scrape(client)

    assert value(samples, "portal_sessions", status="WORKING") == 2
    assert value(samples, "portal_sessions", status="SCAN_QR_CODE") == 1
    assert value(samples, "portal_sessions", status="STOPPED") == 0
    assert value(samples, "portal_messages", direction="out", status="READ") == 2
    assert value(samples, "portal_messages", direction="out", status="ERROR") == 1
    assert value(samples, "portal_messages", direction="in", status="SERVER") == 1
    assert value(samples, "portal_waha_server_sessions", server=server.name) == 3
    assert value(samples, "portal_waha_server_capacity", server=server.name) == server.capacity


def test_metrics_refuse_other_hosts_when_no_token_is_set(client: Any) -> None:
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_metrics_require_the_bearer_token_when_one_is_set(app: Any, client: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-me-0123456789")

    missing = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    remote_with_token = client.get(
        "/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}, headers={"Authorization": "Bearer scrape-me-0123456789"}
    )

    assert missing.status_code == 401 and wrong.status_code == 401
    assert remote_with_token.status_code == 200
    assert b"portal_http_requests_total" in remote_with_token.data


def test_metrics_report_a_source_that_is_down(app: Any, request_in_app: Any) -> None:
    # `app` starts the test from an empty Redis: no database figures cached by an earlier scrape
    status, text = request_in_app(
        "/metrics", DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/portal_test"
    )

    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    assert value(samples, "portal_metrics_source_up", source="database") == 0
    assert value(samples, "portal_metrics_source_up", source="redis") == 1
