"""The job commands: worker, scheduler, failed jobs and their replay, event sweep and replay."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import signal
import subprocess
import sys
from typing import Any

from rq import Queue
from sqlalchemy import select

from portal import jobs, queue
from portal.extensions import db, redis_store
from portal.jobs import QUEUE_EVENTS, QUEUE_MAINTENANCE, QUEUES, enqueue, resolve
from portal.jobs.schedule import entries
from portal.models import WebhookEvent
from tests.builders import envelope, inbound_payload, new_session, post_events
from tests.helpers import wait_for


def _queue(name: str) -> Queue:
    return Queue(name, connection=redis_store.client)


def test_worker_in_burst_mode_processes_queued_events(app, client, tenant):
    session = new_session(tenant, "CLI")
    body = envelope(session, "message", inbound_payload())
    post_events(client, session, body)
    result = app.test_cli_runner().invoke(args=["worker", "--burst", "--queues", "events"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert db.session.scalar(select(WebhookEvent.status).where(WebhookEvent.event_id == body["id"])) == "done"


def test_worker_refuses_an_unknown_queue(app):
    result = app.test_cli_runner().invoke(args=["worker", "--burst", "--queues", "events,nope"])
    assert result.exit_code != 0 and "nope" in result.output


def test_failed_jobs_are_listed_and_can_be_requeued(app, run_jobs):
    with app.app_context():
        enqueue("portal.jobs.events.no_such_job", queue=QUEUE_EVENTS)
    run_jobs()
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["jobs", "failed"])
    assert "portal.jobs.events.no_such_job" in listed.output
    assert "no_such_job" in runner.invoke(args=["jobs", "failed"]).output
    requeued = runner.invoke(args=["jobs", "requeue", "--all"])
    assert "Requeued 1 job(s)." in requeued.output
    assert [job.func_name for job in _queue(QUEUE_EVENTS).jobs] == ["portal.jobs.events.no_such_job"]


def test_events_sweep_queues_processing_for_waiting_events(app, client, tenant, run_jobs):
    session = new_session(tenant, "CLI")
    body = envelope(session, "message", inbound_payload())
    post_events(client, session, body)
    _queue(QUEUE_EVENTS).empty()  # as if the job had been lost
    result = app.test_cli_runner().invoke(args=["events", "sweep", "--older-than", "0"])
    assert "1 event(s) were waiting" in result.output
    run_jobs()
    db.session.expire_all()
    assert db.session.scalar(select(WebhookEvent.status).where(WebhookEvent.event_id == body["id"])) == "done"


def test_events_replay_makes_an_event_pending_again(app, client, tenant, run_jobs):
    session = new_session(tenant, "CLI")
    body = envelope(session, "message", inbound_payload())
    post_events(client, session, body)
    run_jobs()
    result = app.test_cli_runner().invoke(args=["events", "replay", body["id"]])
    assert result.exit_code == 0 and "pending again" in result.output
    assert app.test_cli_runner().invoke(args=["events", "replay", "evt_unknown"]).exit_code != 0


def test_portal_queue_names_every_job_function_by_its_path():
    paths = {getattr(queue, name) for name in dir(queue) if name.startswith("JOB_")}
    job_functions = {
        f"{module.__name__}.{name}"
        for module in (importlib.import_module(f"portal.jobs.{m.name}") for m in pkgutil.iter_modules(jobs.__path__))
        for name, func in vars(module).items()
        if inspect.isfunction(func) and getattr(func, "job_name", None) == f"{module.__name__}.{name}"
    }
    assert paths == job_functions
    for path in paths:
        assert resolve(path).job_name == path  # set by the @job decorator: the job label of portal_jobs_total


def test_every_scheduled_job_names_a_job_function_on_a_known_queue(app):
    for entry in entries(app.config):
        assert resolve(entry.func).job_name == entry.func, entry.id
        assert entry.queue in QUEUES and entry.interval >= 1
    sync = next(e for e in entries(app.config) if e.id == "sessions-sync")
    assert sync.interval == app.config["SYNC_INTERVAL"]


def test_scheduler_queues_the_periodic_jobs(_environ: dict[str, str], sim: Any):
    env = dict(os.environ, **_environ, WAHA_BASE_URL=sim.url, FLASK_APP="wsgi")
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # Interval jobs that never ran are due at once.
        # The scheduler queues them one after another: wait for each.
        wait_for(
            lambda: (
                "portal.jobs.maintenance.sync_sessions" in [job.func_name for job in _queue(QUEUE_MAINTENANCE).jobs]
            ),
            timeout=20,
        )
        wait_for(
            lambda: "portal.jobs.events.sweep_events" in [job.func_name for job in _queue(QUEUE_EVENTS).jobs],
            timeout=10,
        )
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def test_scheduler_without_redis_explains_itself(_environ: dict[str, str], monkeypatch):
    from portal import create_app

    # A second app re-binds the process-wide Redis holder; put the test suite's connection back afterwards.
    monkeypatch.setattr(redis_store, "_client", redis_store._client)
    monkeypatch.setattr(redis_store, "embedded", redis_store.embedded)
    app = create_app({**_environ, "REDIS_URL": "", "DATABASE_URL": "sqlite://"})
    result = app.test_cli_runner().invoke(args=["scheduler"])
    assert result.exit_code != 0 and "REDIS_URL" in result.output
