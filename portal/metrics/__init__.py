"""Prometheus metrics: what each process counts, what is shared through Redis, and what is read at scrape time.

Three kinds of numbers, chosen by where the thing being counted happens:

* `http`: HTTP requests happen in the web processes only; plain prometheus_client metrics, per process
  (merged across gunicorn workers by the multiprocess collector).
* `shared`: WAHA calls, webhook events and job outcomes happen in web processes *and* in RQ workers; their
  counters live in one Redis hash that every process adds to (counted in process, flushed every second).
* `collectors`: queue depths, sessions by status, messages by direction and status, webhook backlog and the
  fleet are gauges read at scrape time from Redis and the database with a few GROUP BY queries.

Every label has a bounded set of values: route templates (never raw paths), HTTP methods, status codes, WAHA
client method names, error class names, fixed outcome names, job paths, queue names, server names.
"""

from __future__ import annotations

from flask import Flask

from portal.metrics import http
from portal.metrics.collectors import (
    MESSAGE_STATUSES,
    MULTIPROC_ENV,
    RQ_STATES,
    SNAPSHOT_KEY,
    database_snapshot,
    metrics_response,
    render,
)
from portal.metrics.http import HTTP_BUCKETS, HTTP_METHODS, http_duration, http_requests
from portal.metrics.shared import (
    FLUSH_SECONDS,
    JOB_OUTCOMES,
    REDIS_PAUSE_SECONDS,
    SHARED_KEY,
    WAHA_BUCKETS,
    WEBHOOK_OUTCOMES,
    SharedCounter,
    flush,
    jobs,
    observe_waha_call,
    webhook_events,
)

__all__ = [
    "FLUSH_SECONDS",
    "HTTP_BUCKETS",
    "HTTP_METHODS",
    "JOB_OUTCOMES",
    "MESSAGE_STATUSES",
    "MULTIPROC_ENV",
    "REDIS_PAUSE_SECONDS",
    "RQ_STATES",
    "SHARED_KEY",
    "SNAPSHOT_KEY",
    "WAHA_BUCKETS",
    "WEBHOOK_OUTCOMES",
    "SharedCounter",
    "database_snapshot",
    "flush",
    "http_duration",
    "http_requests",
    "init_app",
    "jobs",
    "metrics_response",
    "observe_waha_call",
    "render",
    "webhook_events",
]


def init_app(app: Flask) -> None:
    """Count every request by route template and hand the WAHA client its observer."""
    app.extensions["portal_waha_observer"] = observe_waha_call
    http.init_app(app)
