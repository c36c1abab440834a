"""Background jobs: RQ queues on Redis, or an in-process runner in the embedded default.

Jobs are enqueued by dotted name with ids and primitives only. Each job runs inside an app context and
removes the database session afterwards.
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

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


class RQRunner:
    """Enqueues onto RQ queues built from REDIS_URL."""

    def __init__(self, connection: Any) -> None:
        from rq import Queue

        self.connection = connection
        self.queues = {name: Queue(name, connection=connection) for name in QUEUES}

    def enqueue(self, func_path: str, *args: Any, queue: str = QUEUE_EVENTS, **options: Any) -> Any:
        return self.queues[queue].enqueue(func_path, *args, **options)


def _resolve(func_path: str) -> Callable:
    module_name, _, attr = func_path.rpartition(".")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)


def runner() -> InProcessRunner | RQRunner:
    """The job runner of the current app."""
    return current_app.extensions["portal_jobs"]


def enqueue(func_path: str, *args: Any, queue: str = QUEUE_EVENTS, **options: Any) -> Any:
    """Queue `func_path(*args)`; options are passed to RQ (job_id, retry, ...)."""
    return runner().enqueue(func_path, *args, queue=queue, **options)


def init_app(app: Flask) -> None:
    if app.config.get("REDIS_URL"):
        app.extensions["portal_jobs"] = RQRunner(redis_store.client)
    else:
        app.extensions["portal_jobs"] = InProcessRunner(app)
