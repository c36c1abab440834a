"""Counters shared by every process through one Redis hash: WAHA calls (with their latency), webhook events, jobs.

These things happen in web processes *and* in RQ workers (other containers, forked work-horses that live for
one job), so their counters are kept in Redis: every process adds to the same totals and a scrape of any web
process sees all of them.

Counting costs no round trip: an increment is added to this process's buffer (a dict under a lock), and a small
thread hands the buffer to Redis in one pipeline every FLUSH_SECONDS. A scrape flushes its own process's buffer
before it reads the hash, a job flushes at its end (a work-horse leaves with os._exit) and the process flushes
at exit; so a scrape sees every count older than FLUSH_SECONDS from every process. While Redis is down the
counts stay in the buffer (bounded: one entry per label set) and go out with the first flush that succeeds.
A caller that executes a pipeline anyway can still pass it to add its increments to that round trip.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from portal.redisconn import PauseAfterFailure

log = logging.getLogger(__name__)

SHARED_KEY = "portal:metrics:shared"
_SEP = "\x1f"

WAHA_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WEBHOOK_OUTCOMES = ("received", "processed", "failed", "ignored", "duplicate", "unknown_session", "stale")
JOB_OUTCOMES = ("succeeded", "failed", "retried")

REDIS_PAUSE_SECONDS = 30.0
_pause = PauseAfterFailure(REDIS_PAUSE_SECONDS)


def _shared_redis() -> Any | None:
    from portal.extensions import redis_store

    try:
        connection = redis_store.client
    except RuntimeError:
        return None
    return None if _pause.paused(connection) else connection


def _field(name: str, labels: Sequence[str]) -> str:
    return _SEP.join([name, *(str(v).replace(_SEP, " ") for v in labels)])


FLUSH_SECONDS = 1.0  # how old a count may be when a scrape of another process reads the shared hash


class _Buffer:
    """This process's increments not yet in Redis, and the thread that hands them over."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, float] = {}
        self.thread: threading.Thread | None = None
        self.pid = 0

    def add(self, increments: Iterable[tuple[str, float]]) -> None:
        with self.lock:
            for field, amount in increments:
                self.pending[field] = self.pending.get(field, 0.0) + amount
            if self.pid != os.getpid() or self.thread is None or not self.thread.is_alive():
                self._start()

    def _start(self) -> None:
        # Started lazily, so a forked process (a gunicorn worker, an RQ work-horse) runs a thread of its own.
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()

    def flush(self) -> bool:
        """Send the pending counts in one pipeline; on failure they stay pending. True when nothing is left."""
        with self.lock:
            pending, self.pending = self.pending, {}
        if not pending:
            return True
        connection = _shared_redis()
        if connection is not None:
            try:
                pipe = connection.pipeline(transaction=False)
                for field, amount in pending.items():
                    pipe.hincrbyfloat(SHARED_KEY, field, amount)
                pipe.execute()
                return True
            except Exception as exc:  # redis errors, and anything else a broken connection throws
                # Not tried again for a while: a Redis that hangs must not hold up the scrape or the exit.
                if _pause.failed(connection):
                    log.warning(
                        "metrics: Redis unreachable (%s); shared counters held in this process for %.0f s",
                        type(exc).__name__,
                        REDIS_PAUSE_SECONDS,
                    )
        with self.lock:  # keep them for the next flush
            for field, amount in pending.items():
                self.pending[field] = self.pending.get(field, 0.0) + amount
        return False

    def after_fork(self) -> None:
        # The parent's counts are the parent's to send; the child starts empty, with a thread of its own.
        self.lock = threading.Lock()
        self.pending = {}
        self.thread = None
        self.pid = 0


_buffer = _Buffer()
os.register_at_fork(after_in_child=_buffer.after_fork)
atexit.register(_buffer.flush)


def flush() -> bool:
    """Hand this process's pending counts to Redis now (a scrape, the end of a job, the end of the process)."""
    return _buffer.flush()


def _shared_increment(increments: Iterable[tuple[str, float]], pipeline: Any = None) -> None:
    """Add to the shared counters; never raises (a metric must not break the work it counts)."""
    if pipeline is not None:
        for field, amount in increments:
            pipeline.hincrbyfloat(SHARED_KEY, field, amount)
        return
    _buffer.add(increments)


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
            for name, value in zip(self.labelnames, values, strict=True)
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


def shared_families(connection: Any) -> list[Metric]:
    """Every shared counter and histogram, from one read of the Redis hash (raises when Redis cannot answer).

    This process's own pending counts are flushed first, so what it counted itself is in the answer."""
    _buffer.flush()
    raw = connection.hgetall(SHARED_KEY)
    values = {k.decode(): float(v) for k, v in raw.items()}
    return [
        _waha_calls.family(values),
        _waha_duration_family(values),
        webhook_events.family(values),
        jobs.family(values),
    ]
