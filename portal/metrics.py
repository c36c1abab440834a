"""Prometheus metrics: what each process counts, what is shared through Redis, and what is read at scrape time.

Three kinds of numbers, chosen by where the thing being counted happens:

* HTTP requests happen in the web processes only. They are plain prometheus_client metrics; under gunicorn
  with several workers each worker writes its own files under ``PROMETHEUS_MULTIPROC_DIR`` (set by
  gunicorn.conf.py) and ``/metrics`` merges them with the multiprocess collector, whichever worker answers.
* WAHA calls, webhook events and job outcomes happen in web processes *and* in RQ workers (other containers,
  forked work-horses that live for one job). Their counters are kept in one Redis hash, so every process adds to
  the same totals and a scrape of any web process sees all of them. One Redis round trip per WAHA call (or none,
  when the caller passes its own pipeline); when Redis is down the increments are skipped for a while rather
  than slowing the call that is being counted.
* Queue depths, sessions by status, messages by direction and status, webhook backlog and the fleet are gauges
  read at scrape time from Redis and the database with a few GROUP BY queries.

Every label has a bounded set of values: route templates (never raw paths), HTTP methods, status codes, WAHA
client method names, error class names, fixed outcome names, queue names, server names.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from flask import Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SHARED_KEY = "portal:metrics:shared"
SNAPSHOT_KEY = "portal:metrics:db-snapshot"
_SEP = "\x1f"

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAHA_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WEBHOOK_OUTCOMES = ("received", "processed", "failed", "ignored", "duplicate", "unknown_session", "stale")
JOB_OUTCOMES = ("succeeded", "failed", "retried")
MESSAGE_STATUSES = ("PENDING", "SERVER", "DEVICE", "READ", "PLAYED", "ERROR")
RQ_STATES = ("queued", "started", "scheduled", "deferred", "failed", "finished")

# `*_created` series double the output and nothing here uses them (multiprocess mode never has them).
disable_created_metrics()

# ---------------------------------------------------------------------- per-process (web only)

http_requests = Counter(
    "portal_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
http_duration = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)

# ---------------------------------------------------------------------- shared through Redis

_paused: tuple[int, float] = (0, 0.0)  # (id of the Redis client that failed, monotonic time the pause ends)
_paused_lock = threading.Lock()
REDIS_PAUSE_SECONDS = 30.0


def _shared_redis() -> Any | None:
    from portal.extensions import redis_store

    try:
        connection = redis_store.client
    except RuntimeError:
        return None
    client_id, until = _paused
    if client_id == id(connection) and time.monotonic() < until:
        return None
    return connection


def _pause_shared_writes(connection: Any, exc: Exception) -> None:
    global _paused
    with _paused_lock:
        client_id, until = _paused
        if client_id != id(connection) or time.monotonic() >= until:
            log.warning(
                "metrics: Redis unreachable (%s); shared counters paused for %.0f s",
                type(exc).__name__,
                REDIS_PAUSE_SECONDS,
            )
        _paused = (id(connection), time.monotonic() + REDIS_PAUSE_SECONDS)


def _field(name: str, labels: Sequence[str]) -> str:
    return _SEP.join([name, *(str(v).replace(_SEP, " ") for v in labels)])


def _shared_increment(increments: Iterable[tuple[str, float]], pipeline: Any = None) -> None:
    """Add to the shared counters; never raises (a metric must not break the work it counts)."""
    increments = list(increments)
    if pipeline is not None:
        for field, amount in increments:
            pipeline.hincrbyfloat(SHARED_KEY, field, amount)
        return
    connection = _shared_redis()
    if connection is None:
        return
    try:
        pipe = connection.pipeline(transaction=False)
        for field, amount in increments:
            pipe.hincrbyfloat(SHARED_KEY, field, amount)
        pipe.execute()
    except Exception as exc:  # redis errors, and anything else a broken connection throws
        # Skipping is cheaper than waiting for a connect timeout on every WAHA call while Redis is away.
        _pause_shared_writes(connection, exc)


class _SharedChild:
    def __init__(self, field: str) -> None:
        self._field = field

    def inc(self, amount: float = 1, pipeline: Any = None) -> None:
        """Add `amount`; pass a Redis pipeline you execute anyway to save the round trip."""
        if amount < 0:
            raise ValueError("counters only go up")
        _shared_increment([(self._field, amount)], pipeline)


class SharedCounter:
    """A labelled counter whose value lives in Redis, so every process (web, worker, work-horse) adds to one total.

    Same calling style as prometheus_client: ``webhook_events.labels("processed").inc(25)``. Label values
    outside `allowed` are counted as "other" so a typo cannot create unbounded series.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], allowed: dict[str, Sequence[str]] | None = None
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.allowed = {k: frozenset(v) for k, v in (allowed or {}).items()}

    def labels(self, *values: str) -> _SharedChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        checked = [
            value if name not in self.allowed or value in self.allowed[name] else "other"
            for name, value in zip(self.labelnames, values)
        ]
        return _SharedChild(_field(self.name, checked))

    def family(self, values: dict[str, float]) -> CounterMetricFamily:
        """The counter's samples from a read of the shared hash."""
        metric = CounterMetricFamily(f"portal_{self.name}", self.documentation, labels=self.labelnames)
        for field, value in sorted(values.items()):
            parts = field.split(_SEP)
            if parts[0] == self.name and len(parts) == len(self.labelnames) + 1:
                metric.add_metric(parts[1:], value)
        return metric


webhook_events = SharedCounter(
    "webhook_events",
    "WAHA webhook events by outcome: received, processed, failed, ignored, duplicate, unknown_session, stale.",
    ["outcome"],
    allowed={"outcome": WEBHOOK_OUTCOMES},
)
jobs = SharedCounter(
    "jobs",
    "Background jobs finished, by job function and outcome (succeeded, failed, retried).",
    ["job", "outcome"],
    allowed={"outcome": JOB_OUTCOMES},
)
_waha_calls = SharedCounter(
    "waha_calls", "WAHA client calls by client method and outcome (ok or error class).", ["method", "outcome"]
)


def observe_waha_call(method: str, outcome: str, seconds: float) -> None:
    """The WAHA client's observer: count the call and file its duration in the latency histogram."""
    index = bisect.bisect_left(WAHA_BUCKETS, seconds)
    bucket = repr(WAHA_BUCKETS[index]) if index < len(WAHA_BUCKETS) else "+Inf"
    _shared_increment(
        [
            (_field("waha_calls", (method, outcome)), 1),
            (_field("waha_seconds_bucket", (method, bucket)), 1),
            (_field("waha_seconds_sum", (method,)), seconds),
        ]
    )


def _waha_duration_family(values: dict[str, float]) -> HistogramMetricFamily:
    per_method: dict[str, dict[str, float]] = {}
    sums: dict[str, float] = {}
    for field, value in values.items():
        parts = field.split(_SEP)
        if parts[0] == "waha_seconds_bucket" and len(parts) == 3:
            per_method.setdefault(parts[1], {})[parts[2]] = value
        elif parts[0] == "waha_seconds_sum" and len(parts) == 2:
            sums[parts[1]] = value
    metric = HistogramMetricFamily(
        "portal_waha_call_duration_seconds",
        "Duration of WAHA client calls (retries included), by client method.",
        labels=["method"],
    )
    for method in sorted(per_method):
        counts = per_method[method]
        running, buckets = 0.0, []
        for bound in WAHA_BUCKETS:
            running += counts.get(repr(bound), 0.0)
            buckets.append((repr(bound), running))
        buckets.append(("+Inf", running + counts.get("+Inf", 0.0)))
        metric.add_metric([method], buckets, sums.get(method, 0.0))
    return metric


# ---------------------------------------------------------------------- scrape-time readings


def _redis_families(connection: Any) -> list[Metric]:
    from rq import Queue, Worker

    from portal.jobs import QUEUES

    raw = connection.hgetall(SHARED_KEY)
    values = {k.decode(): float(v) for k, v in raw.items()}
    families: list[Metric] = [
        _waha_calls.family(values),
        _waha_duration_family(values),
        webhook_events.family(values),
        jobs.family(values),
    ]
    depth = GaugeMetricFamily(
        "portal_rq_jobs", "Jobs in each RQ queue and registry, by queue and state.", labels=["queue", "state"]
    )
    for name in QUEUES:
        queue = Queue(name, connection=connection)
        counts = {
            "queued": queue.count,
            "started": queue.started_job_registry.count,
            "scheduled": queue.scheduled_job_registry.count,
            "deferred": queue.deferred_job_registry.count,
            "failed": queue.failed_job_registry.count,
            "finished": queue.finished_job_registry.count,
        }
        for state in RQ_STATES:
            depth.add_metric([name, state], counts[state])
    families.append(depth)
    families.append(
        GaugeMetricFamily("portal_rq_workers", "RQ workers alive.", value=len(Worker.all(connection=connection)))
    )
    return families


def database_snapshot() -> dict[str, Any]:
    """Counts for the scrape-time gauges, from a handful of GROUP BY queries."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Message, WahaServer, WahaSession, WebhookEvent

    sessions = db.session.execute(select(WahaSession.status, func.count()).group_by(WahaSession.status)).all()
    messages = db.session.execute(
        select(Message.direction, Message.status, func.count()).group_by(Message.direction, Message.status)
    ).all()
    backlog = db.session.execute(
        select(WebhookEvent.status, func.count())
        .where(WebhookEvent.status.in_(("pending", "failed")))
        .group_by(WebhookEvent.status)
    ).all()
    per_server = dict(
        db.session.execute(select(WahaSession.server_id, func.count()).group_by(WahaSession.server_id)).all()
    )
    servers = [
        {
            "name": s.name,
            "up": 1 if s.health == "ok" else 0,
            "capacity": s.capacity,
            "sessions": per_server.get(s.id, 0),
            "draining": 1 if s.is_draining else 0,
            "enabled": 1 if s.is_enabled else 0,
        }
        for s in db.session.scalars(select(WahaServer).order_by(WahaServer.name))
    ]
    db.session.rollback()  # read-only; end the transaction so the connection goes back to the pool idle
    return {
        "sessions": [[status, n] for status, n in sessions],
        "messages": [[direction, status, n] for direction, status, n in messages],
        "webhook_backlog": [[status, n] for status, n in backlog],
        "servers": servers,
    }


def _bounded(value: str | None, allowed: Iterable[str]) -> str:
    return value if value in set(allowed) else "other"


def _database_families(snapshot: dict[str, Any]) -> list[Metric]:
    from portal.models import SESSION_STATUSES

    sessions = GaugeMetricFamily("portal_sessions", "WhatsApp sessions by status.", labels=["status"])
    totals: dict[str, float] = dict.fromkeys(SESSION_STATUSES, 0)
    for status, n in snapshot["sessions"]:
        key = _bounded(status, SESSION_STATUSES)
        totals[key] = totals.get(key, 0) + n
    for status, n in sorted(totals.items()):
        sessions.add_metric([status], n)

    messages = GaugeMetricFamily(
        "portal_messages", "Stored messages by direction and status.", labels=["direction", "status"]
    )
    grouped: dict[tuple[str, str], float] = {}
    for direction, status, n in snapshot["messages"]:
        key = (_bounded(direction, ("in", "out")), _bounded(status, MESSAGE_STATUSES))
        grouped[key] = grouped.get(key, 0) + n
    for (direction, status), n in sorted(grouped.items()):
        messages.add_metric([direction, status], n)

    backlog = GaugeMetricFamily(
        "portal_webhook_events_backlog", "Stored WAHA events not done yet, by status.", labels=["status"]
    )
    pending = {"pending": 0, "failed": 0}
    pending.update({status: n for status, n in snapshot["webhook_backlog"]})
    for status, n in sorted(pending.items()):
        backlog.add_metric([status], n)

    families: list[Metric] = [sessions, messages, backlog]
    for key, help_text in (
        ("up", "1 when the last health check of the WAHA server passed."),
        ("sessions", "Sessions placed on the WAHA server."),
        ("capacity", "Sessions the WAHA server may hold."),
        ("draining", "1 when the WAHA server takes no new sessions."),
        ("enabled", "1 when the WAHA server is enabled."),
    ):
        family = GaugeMetricFamily(f"portal_waha_server_{key}", help_text, labels=["server"])
        for server in snapshot["servers"]:
            family.add_metric([server["name"]], server[key])
        families.append(family)
    return families


def _cached_snapshot(connection: Any | None) -> dict[str, Any]:
    ttl = int(current_app.config.get("METRICS_DB_CACHE_SECONDS", 10))
    if connection is not None and ttl > 0:
        try:
            cached = connection.get(SNAPSHOT_KEY)
            if cached:
                return json.loads(cached)
        except Exception:
            connection = None
    snapshot = database_snapshot()
    if connection is not None and ttl > 0:
        try:
            # Several web processes and Prometheus replicas scrape; one set of queries per interval is enough.
            connection.set(SNAPSHOT_KEY, json.dumps(snapshot), ex=ttl)
        except Exception:
            pass
    return snapshot


class _Families:
    """A collector that hands out families read once for this scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


class _Forward:
    """Forwards the process registry (single-process mode: development, tests, one gunicorn worker)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def render() -> bytes:
    """The Prometheus text exposition for this scrape (needs an app context)."""
    from portal.extensions import redis_store

    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_Forward())

    families: list[Metric] = []
    up = GaugeMetricFamily("portal_metrics_source_up", "1 when this scrape could read the source.", labels=["source"])
    connection = None
    try:
        connection = redis_store.client
        families.extend(_redis_families(connection))
        up.add_metric(["redis"], 1)
    except Exception as exc:
        log.warning("metrics: cannot read Redis: %s", type(exc).__name__)
        connection = None
        up.add_metric(["redis"], 0)
    try:
        families.extend(_database_families(_cached_snapshot(connection)))
        up.add_metric(["database"], 1)
    except Exception as exc:
        log.warning("metrics: cannot read the database: %s", type(exc).__name__)
        from portal.extensions import db

        db.session.rollback()
        up.add_metric(["database"], 0)
    families.append(up)
    registry.register(_Families(families))
    return generate_latest(registry)


# ---------------------------------------------------------------------- HTTP instrumentation

_STARTED = "portal.metrics.started"


def _route_label() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def init_app(app: Flask) -> None:
    """Count every request by route template and hand the WAHA client its observer."""
    app.extensions["portal_waha_observer"] = observe_waha_call

    @app.before_request
    def start_timer() -> None:
        request.environ[_STARTED] = time.perf_counter()

    @app.after_request
    def count_request(response: Response) -> Response:
        started = request.environ.get(_STARTED)
        method = request.method if request.method in HTTP_METHODS else "OTHER"
        route = _route_label()
        http_requests.labels(method, route, str(response.status_code)).inc()
        if started is not None:
            http_duration.labels(method, route).observe(time.perf_counter() - started)
        return response


def metrics_response() -> Response:
    """The /metrics answer."""
    return Response(
        render(),
        mimetype=CONTENT_TYPE_LATEST.split(";")[0],
        headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
    )
