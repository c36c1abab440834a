"""The job queue: queue names, the dotted path of every job, and how services put work on it.

Services queue work by dotted path with ids and primitives only (``enqueue(JOB_DELIVER, delivery_id,
queue=QUEUE_FORWARDING)``). With ``REDIS_URL`` the path goes onto an RQ queue and a `flask worker` runs it;
without it (the embedded default) a small thread pool of the web process runs it. The job functions themselves
live in `portal.jobs`; this module imports none of them (nor any service), so any layer may import it at the top.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from flask import Flask, current_app

log = logging.getLogger(__name__)

# Queue names live here and nowhere else.
QUEUE_EVENTS = "events"
QUEUE_FORWARDING = "forwarding"
QUEUE_MAINTENANCE = "maintenance"
QUEUE_OUTREACH = "outreach"
QUEUES = (QUEUE_EVENTS, QUEUE_FORWARDING, QUEUE_MAINTENANCE, QUEUE_OUTREACH)

# The dotted path of every job (functions decorated with `portal.jobs.job`), by module.
JOB_SEND_PASSWORD_RESET = "portal.jobs.accounts.send_password_reset"
JOB_PRUNE_BROWSER_SESSIONS = "portal.jobs.accounts.prune_browser_sessions"
JOB_DRAIN_EVENTS = "portal.jobs.events.drain_events"
JOB_SWEEP_EVENTS = "portal.jobs.events.sweep_events"
JOB_FETCH_MEDIA = "portal.jobs.events.fetch_media"
JOB_DELIVER = "portal.jobs.forwarding.deliver"
JOB_DRAIN_DELIVERIES = "portal.jobs.forwarding.drain_deliveries"
JOB_DISPATCH_DUE = "portal.jobs.forwarding.dispatch_due"
JOB_SYNC_SESSIONS = "portal.jobs.maintenance.sync_sessions"
JOB_RECONCILE = "portal.jobs.maintenance.reconcile"
JOB_WATCHDOG = "portal.jobs.maintenance.watchdog"
JOB_PRUNE = "portal.jobs.maintenance.prune"
JOB_ENSURE_PARTITIONS = "portal.jobs.maintenance.ensure_partitions"
JOB_CHECK_SERVERS = "portal.jobs.maintenance.check_servers"
JOB_CHECK_NUMBER_HEALTH = "portal.jobs.maintenance.check_number_health"
JOB_RECONCILE_QUOTAS = "portal.jobs.quotas.reconcile_usage"
JOB_RECOUNT_MEDIA = "portal.jobs.quotas.recount_media"
JOB_RECONCILE_SENDS = "portal.jobs.messages.reconcile_sends"
JOB_FETCH_AVATARS = "portal.jobs.inbox.fetch_avatars"
JOB_SYNC_CONTACTS = "portal.jobs.inbox.sync_contacts"
JOB_CONFIRM_OPT_OUT = "portal.jobs.campaigns.confirm_opt_out"
JOB_IMPORT_CAMPAIGN = "portal.jobs.campaigns.import_audience"
JOB_START_CAMPAIGN = "portal.jobs.campaigns.start_campaign"
JOB_ADVANCE_CAMPAIGNS = "portal.jobs.campaigns.advance_campaigns"
JOB_DISPATCH_SENDS = "portal.jobs.outreach.dispatch_sends"
JOB_SWEEP_SENDS = "portal.jobs.outreach.sweep_sends"
JOB_EXPORT_TENANT = "portal.jobs.privacy.export_tenant"
JOB_PRIVACY_UPKEEP = "portal.jobs.privacy.upkeep"

RUNNER_EXTENSION = "portal_jobs"  # app.extensions key of the app's runner


def resolve(func_path: str) -> Callable:
    """The function a dotted path names (the in-process runner and both schedulers use it)."""
    module_name, _, attr = func_path.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


class InProcessRunner:
    """Runs jobs on a small thread pool inside the web process (embedded default only)."""

    def __init__(self, app: Flask, workers: int = 4) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self.timers: set[Any] = set()
        self.timers_lock = threading.Lock()

    def enqueue(self, func_path: str, *args: Any, queue: str = QUEUE_EVENTS, **options: Any) -> None:
        """Submit `func_path(*args)` to the pool; RQ options (retry, job_id...) do not apply here."""
        func = resolve(func_path)

        def run() -> None:
            with self.app.app_context():
                try:
                    func(*args)
                except Exception:
                    log.exception("in-process job %s failed", func_path)

        try:
            self.pool.submit(run)
        except RuntimeError:
            # The process is stopping (the interpreter shut the pool down): a job not started now is one the next
            # start's schedule and recovery jobs cover, as after any restart; no error to report.
            log.info("in-process job %s not started: the process is stopping", func_path)

    def enqueue_at(self, when: datetime, func_path: str, *args: Any, queue: str = QUEUE_EVENTS, **options: Any) -> None:
        """Submit `func_path(*args)` at `when` (a timer thread); one timer per `job_id` at a time."""
        job_id = options.get("job_id")
        with self.timers_lock:
            if job_id is not None and job_id in self.timers:
                return
            if job_id is not None:
                self.timers.add(job_id)

        def fire() -> None:
            with self.timers_lock:
                self.timers.discard(job_id)
            self.enqueue(func_path, *args, queue=queue)

        timer = threading.Timer(max(0.0, when.timestamp() - time.time()), fire)
        timer.daemon = True
        timer.start()

    def enqueue_many(self, calls: Iterable[tuple[str, tuple]], queue: str = QUEUE_EVENTS, **options: Any) -> int:
        """Submit each `(func_path, args)` call; returns how many."""
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
        """Queue one job; returns RQ's Job."""
        return self.queues[queue].enqueue(func_path, *args, **options)

    def enqueue_at(self, when: datetime, func_path: str, *args: Any, queue: str = QUEUE_EVENTS, **options: Any) -> Any:
        """Queue one job for `when`: a worker's scheduler (`flask worker` runs one) moves it onto the queue then."""
        return self.queues[queue].enqueue_at(when, func_path, *args, **options)

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


def init_app(app: Flask) -> InProcessRunner | RQRunner:
    """Give the app its runner: RQ on the app's Redis with REDIS_URL, else the in-process pool."""
    from portal.extensions import redis_store

    runner: InProcessRunner | RQRunner
    runner = RQRunner(redis_store.client) if app.config.get("REDIS_URL") else InProcessRunner(app)
    app.extensions[RUNNER_EXTENSION] = runner
    return runner


def runner() -> InProcessRunner | RQRunner:
    """The job runner of the current app."""
    return current_app.extensions[RUNNER_EXTENSION]


def enqueue(func_path: str, *args: Any, queue: str = QUEUE_EVENTS, **options: Any) -> Any:
    """Queue `func_path(*args)`; options are passed to RQ (job_id, retry, ...)."""
    return runner().enqueue(func_path, *args, queue=queue, **options)


def enqueue_at(when: datetime, func_path: str, *args: Any, queue: str = QUEUE_EVENTS, **options: Any) -> Any:
    """Queue `func_path(*args)` to run at `when` (at most about a second late on RQ); options go to RQ (job_id)."""
    return runner().enqueue_at(when, func_path, *args, queue=queue, **options)


def enqueue_many(calls: Iterable[tuple[str, tuple]], *, queue: str = QUEUE_EVENTS, **options: Any) -> int:
    """Queue several `(func_path, args)` calls at once (one Redis round trip on RQ); returns how many."""
    return runner().enqueue_many(list(calls), queue=queue, **options)


_served: tuple[str, ...] = QUEUES  # the queues this process's worker takes (`flask worker --queues`)


def serve(queues: Iterable[str]) -> None:
    """Note the queues this process's worker takes: a drain hands over only for a job its worker would run."""
    global _served
    _served = tuple(queues)


def others_waiting(queue: str) -> bool:
    """Whether a job waits in another queue this process's worker takes (RQ only; never raises). A long drain job
    hands over when one does, so that a worker busy with it takes the other job next (workers take their queues in
    turn); a worker kept to one queue never hands over, nor asks Redis."""
    current = runner()
    if not isinstance(current, RQRunner):
        return False
    others = [name for name in _served if name != queue and name in current.queues]
    if not others:
        return False
    try:
        with current.connection.pipeline() as pipe:
            for name in others:
                pipe.llen(current.queues[name].key)
            return any(pipe.execute())
    except Exception:
        return False


def retry_policy(max_retries: int = 3, intervals: tuple[int, ...] = (10, 60, 300)) -> Any:
    """RQ's Retry with growing intervals, or None in the embedded default (no scheduler to wait on)."""
    if not current_app.config.get("REDIS_URL"):
        return None
    from rq import Retry

    return Retry(max=max_retries, interval=list(intervals))
