"""Background jobs: RQ queues on Redis, or an in-process runner in the embedded default.

Jobs are enqueued by dotted name with ids and primitives only. Each job runs inside an app context and
removes the database session afterwards. Periodic jobs are data in `portal.jobs.schedule`; `flask scheduler`
runs them on RQ, and the embedded default runs them on a thread of the web process.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask, current_app

from portal.extensions import db, redis_store

log = logging.getLogger(__name__)

# Queue names live here and nowhere else.
QUEUE_EVENTS = "events"
QUEUE_FORWARDING = "forwarding"
QUEUE_MAINTENANCE = "maintenance"
QUEUES = (QUEUE_EVENTS, QUEUE_FORWARDING, QUEUE_MAINTENANCE)


def job(func: Callable) -> Callable:
    """Decorator for job functions: log failures and always release the database session."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception:
            db.session.rollback()
            log.exception("job %s failed", func.__name__)
            raise
        finally:
            db.session.remove()

    return wrapper


class InProcessRunner:
    """Runs jobs on a small thread pool inside the web process (embedded default only)."""

    def __init__(self, app: Flask, workers: int = 4) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self.lock = threading.Lock()

    def enqueue(self, func_path: str, *args: Any, queue: str = QUEUE_EVENTS, **options: Any) -> None:
        func = _resolve(func_path)

        def run() -> None:
            with self.app.app_context():
                try:
                    func(*args)
                except Exception:
                    log.exception("in-process job %s failed", func_path)

        self.pool.submit(run)

    def enqueue_many(self, calls: Iterable[tuple[str, tuple]], queue: str = QUEUE_EVENTS, **options: Any) -> int:
        count = 0
        for func_path, args in calls:
            self.enqueue(func_path, *args, queue=queue)
            count += 1
        return count


class RQRunner:
    """Enqueues onto RQ queues built from REDIS_URL."""

    def __init__(self, connection: Any) -> None:
        from rq import Queue

        self.connection = connection
        self.queues = {name: Queue(name, connection=connection) for name in QUEUES}

    def enqueue(self, func_path: str, *args: Any, queue: str = QUEUE_EVENTS, **options: Any) -> Any:
        return self.queues[queue].enqueue(func_path, *args, **options)

    def enqueue_many(self, calls: Iterable[tuple[str, tuple]], queue: str = QUEUE_EVENTS, **options: Any) -> int:
        """Queue many calls in one Redis round trip (a pipeline), each as its own job."""
        from rq import Queue

        datas = [Queue.prepare_data(func_path, args=args, **options) for func_path, args in calls]
        if not datas:
            return 0
        with self.connection.pipeline() as pipe:
            self.queues[queue].enqueue_many(datas, pipeline=pipe)
            pipe.execute()
        return len(datas)


def _resolve(func_path: str) -> Callable:
    module_name, _, attr = func_path.rpartition(".")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)


def resolve(func_path: str) -> Callable:
    """The function a dotted path names (used by the schedulers)."""
    return _resolve(func_path)


def runner() -> InProcessRunner | RQRunner:
    """The job runner of the current app."""
    return current_app.extensions["portal_jobs"]


def enqueue(func_path: str, *args: Any, queue: str = QUEUE_EVENTS, **options: Any) -> Any:
    """Queue `func_path(*args)`; options are passed to RQ (job_id, retry, ...)."""
    return runner().enqueue(func_path, *args, queue=queue, **options)


def enqueue_many(calls: Iterable[tuple[str, tuple]], *, queue: str = QUEUE_EVENTS, **options: Any) -> int:
    """Queue several `(func_path, args)` calls at once (one Redis round trip on RQ); returns how many."""
    return runner().enqueue_many(list(calls), queue=queue, **options)


def retry_policy(max_retries: int = 3, intervals: tuple[int, ...] = (10, 60, 300)) -> Any:
    """RQ's Retry with growing intervals, or None in the embedded default (no scheduler to wait on)."""
    if not current_app.config.get("REDIS_URL"):
        return None
    from rq import Retry

    return Retry(max=max_retries, interval=list(intervals))


# ---------------------------------------------------------------------- workers


def _worker_classes() -> tuple[type, type]:
    """RQ worker classes that make a forked work-horse open its own database connections."""
    from rq import SimpleWorker, Worker

    class PortalWorker(Worker):
        """Forks a work-horse per job; the horse inherits the app context but never the parent's sockets."""

        def main_work_horse(self, job: Any, queue: Any) -> None:  # type: ignore[override]
            # Pooled connections were opened by the parent; sharing them across a fork corrupts both sides.
            db.engine.dispose(close=False)
            super().main_work_horse(job, queue)

    class PortalSimpleWorker(SimpleWorker):
        """Runs jobs in the worker process itself: no fork, several times more jobs per second."""

    return PortalWorker, PortalSimpleWorker


def make_worker(
    queues: Iterable[str] = QUEUES, *, simple: bool = False, name: str | None = None, connection: Any = None
) -> Any:
    """An RQ worker on the app's Redis (or on ``connection``) for the given queues (call inside an app context)."""
    worker_cls, simple_cls = _worker_classes()
    cls = simple_cls if simple else worker_cls
    return cls(list(queues), connection=connection if connection is not None else redis_store.client, name=name)


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
    if app.config.get("REDIS_URL"):
        app.extensions["portal_jobs"] = RQRunner(redis_store.client)
        return
    app.extensions["portal_jobs"] = InProcessRunner(app)
    if app.config.get("TESTING"):
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
