"""Background jobs: the job functions' decorator, RQ workers, and the embedded scheduler.

Queue names, job paths, the runners and `enqueue` live in `portal.queue` (re-exported here for older callers).
Every job (a function decorated with `job`) runs inside an app context with its name and id in every log line,
counts its outcome in `portal_jobs_total`, and removes the database session afterwards. Periodic jobs are data
in `portal.jobs.schedule`; `flask scheduler` runs them on RQ, and the embedded default runs them on a thread of
the web process.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, current_app

from portal import metrics, queue
from portal.extensions import db, redis_store
from portal.queue import (
    QUEUE_EVENTS,
    QUEUE_FORWARDING,
    QUEUE_MAINTENANCE,
    QUEUES,
    InProcessRunner,
    RQRunner,
    enqueue,
    enqueue_many,
    resolve,
    retry_policy,
    runner,
)
from portal.telemetry import log_context

__all__ = [
    "QUEUES",
    "QUEUE_EVENTS",
    "QUEUE_FORWARDING",
    "QUEUE_MAINTENANCE",
    "InProcessRunner",
    "RQRunner",
    "ThreadScheduler",
    "enqueue",
    "enqueue_many",
    "init_app",
    "job",
    "make_worker",
    "worker_class",
    "resolve",
    "retry_policy",
    "runner",
]

log = logging.getLogger(__name__)


def _current_rq_job() -> Any:
    """The RQ job this code runs as, or None (in-process runner, a direct call)."""
    from rq import get_current_job

    return get_current_job()


def _run(func: Callable, name: str, rq_job: Any, args: Any, kwargs: Any) -> Any:
    try:
        result = func(*args, **kwargs)
    except Exception:
        db.session.rollback()
        retried = rq_job is not None and rq_job.should_retry
        log.exception("job %s failed%s", func.__name__, "; it will be retried" if retried else "")
        metrics.jobs.labels(name, "retried" if retried else "failed").inc()
        raise
    finally:
        db.session.remove()
    metrics.jobs.labels(name, "succeeded").inc()
    return result


def job(func: Callable) -> Callable:
    """Decorator for job functions.

    The job runs inside ``log_context(job=<dotted path>, job_id=<RQ job id, or a new one in-process>)`` and
    counts its outcome in ``portal_jobs_total``: succeeded, failed, or retried (it raised and RQ will run it
    again). A failure is logged and rolled back; the database session is always released.
    """
    name = f"{func.__module__}.{func.__qualname__}"

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        rq_job = _current_rq_job()
        job_id = rq_job.id if rq_job is not None else uuid.uuid4().hex
        with log_context(job=name, job_id=job_id):
            try:
                return _run(func, name, rq_job, args, kwargs)
            finally:
                # An RQ work-horse leaves with os._exit (no exit handlers): what the job counted goes out now.
                metrics.flush()

    wrapper.job_name = name  # type: ignore[attr-defined]  # the path it is queued by, and its metric label
    return wrapper


# ---------------------------------------------------------------------- workers


@functools.cache
def _worker_classes() -> tuple[type, type]:
    """RQ worker classes that make a forked work-horse open its own database connections."""
    from rq import SimpleWorker, Worker

    class PortalWorker(Worker):
        """Forks a work-horse per job; the horse inherits the app context but never the parent's sockets."""

        def main_work_horse(self, job: Any, queue: Any) -> None:
            # Pooled connections were opened by the parent; sharing them across a fork corrupts both sides.
            db.engine.dispose(close=False)
            super().main_work_horse(job, queue)

    class PortalSimpleWorker(SimpleWorker):
        """Runs jobs in the worker process itself: no fork, several times more jobs per second. Each job gets an app
        context of its own, as each request does: what one job leaves in `g` (or its database session) is gone
        before the next one starts."""

        def execute_job(self, job: Any, queue: Any) -> Any:
            with current_app._get_current_object().app_context():  # type: ignore[attr-defined]  # the app behind the proxy
                return super().execute_job(job, queue)

    return PortalWorker, PortalSimpleWorker


def make_worker(
    queues: Iterable[str] = QUEUES, *, simple: bool = False, name: str | None = None, connection: Any = None
) -> Any:
    """An RQ worker on the app's Redis (or on ``connection``) for the given queues (call inside an app context)."""
    cls = worker_class(simple=simple)
    return cls(list(queues), connection=connection if connection is not None else redis_store.client, name=name)


def worker_class(*, simple: bool) -> type:
    """The RQ worker class `flask worker` runs: jobs in the worker process (`simple`), or a forked horse each."""
    worker_cls, simple_cls = _worker_classes()
    return simple_cls if simple else worker_cls


# ---------------------------------------------------------------------- embedded scheduler


class ThreadScheduler:
    """The schedule of `portal.jobs.schedule`, run by a daemon thread (embedded default without Redis)."""

    def __init__(self, app: Flask, tick: float = 1.0, start_delay: float = 5.0) -> None:
        self.app = app
        self.tick = tick
        self.start_delay = start_delay
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.pid: int | None = None

    def start(self) -> None:
        if self.thread is not None and self.thread.is_alive() and self.pid == os.getpid():
            return
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._loop, name="portal-scheduler", daemon=True)
        self.thread.start()
        log.info("in-process scheduler started")

    def stop(self) -> None:
        self.stopping.set()

    def _loop(self) -> None:
        from portal.jobs.schedule import entries

        next_run: dict[str, float] = {}
        # Let the web process finish starting before the first round of jobs.
        if self.stopping.wait(self.start_delay):
            return
        while not self.stopping.is_set():
            now = time.monotonic()
            with self.app.app_context():
                for entry in entries(self.app.config):
                    if next_run.get(entry.id, 0.0) <= now:
                        next_run[entry.id] = now + entry.interval
                        try:
                            enqueue(entry.func, queue=entry.queue)
                        except Exception:
                            log.exception("scheduling %s failed", entry.id)
            self.stopping.wait(self.tick)


def _under_cli() -> bool:
    import click

    return click.get_current_context(silent=True) is not None


def init_app(app: Flask) -> None:
    """Give the app its job runner (`portal.queue`) and, in the embedded default, the scheduler thread."""
    if not isinstance(queue.init_app(app), InProcessRunner) or app.config.get("TESTING"):
        return
    scheduler = ThreadScheduler(app)
    app.extensions["portal_scheduler"] = scheduler
    # CLI commands (db upgrade, demo seed...) must not start it; a web process starts it at once, or on its first
    # request when the app was built before a fork (gunicorn --preload).
    if not _under_cli():
        scheduler.start()

    @app.before_request
    def _ensure_scheduler() -> None:
        if scheduler.pid != os.getpid() or scheduler.thread is None or not scheduler.thread.is_alive():
            scheduler.start()
