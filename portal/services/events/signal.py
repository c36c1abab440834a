"""The drain signal: asking for a drain job after events were stored, coalesced per process.

At most one drain job waits in the queue (a Redis flag guards it); a busy receiver signals at most once per
SIGNAL_COALESCE_SECONDS, from a small thread that also hands the receiver's event counters to the shared
metrics. Without Redis nothing is lost: the rows stay pending and the sweeper queues them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from flask import current_app

from portal.extensions import redis_store
from portal.queue import JOB_DRAIN_EVENTS, QUEUE_EVENTS, enqueue, retry_policy
from portal.redisconn import PauseAfterFailure

log = logging.getLogger(__name__)

DRAIN_FLAG = "portal:events:drain-queued"
DRAIN_FLAG_TTL = 10  # seconds; a lost drain job is replaced after this long at the latest
SIGNAL_COALESCE_SECONDS = 0.05  # a busy receiver signals at most this often per process
REDIS_PAUSE_SECONDS = 5.0  # after a Redis failure the receiver stops trying to signal for this long
_redis_pause = PauseAfterFailure(REDIS_PAUSE_SECONDS)


class _DrainSignal:
    """Coalesces the receiver's drain signals per process, so a busy receiver makes no Redis round trip per request.

    The first commit after a quiet spell signals at once (one SET NX, plus an enqueue when no drain job waits).
    Commits within SIGNAL_COALESCE_SECONDS of a signal only mark the process "dirty"; a small thread sends one
    signal for all of them at the end of the window. A process that dies in between leaves its rows pending:
    the sweeper queues them.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = 0.0
        self.dirty = False
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.app: Any = None
        self.window = SIGNAL_COALESCE_SECONDS
        self.counts: dict[str, int] = {}

    def count(self, **outcomes: int) -> None:
        """Add to the receiver's event counters; the thread hands them to the shared metrics in one round trip."""
        with self.lock:
            for outcome, amount in outcomes.items():
                if amount:
                    self.counts[outcome] = self.counts.get(outcome, 0) + amount
            self._ensure_thread()

    def after_commit(self) -> bool:
        now = time.monotonic()
        config = current_app.config
        # Tests run a burst worker right after a request: there every commit signals at once.
        self.window = float(
            config.get("EVENTS_SIGNAL_COALESCE_SECONDS", 0 if config.get("TESTING") else SIGNAL_COALESCE_SECONDS)
        )
        with self.lock:
            if now - self.last >= self.window:
                self.last, self.dirty = now, False
                immediate = True
            else:
                self.dirty, immediate = True, False
                self._ensure_thread()
        return request_drain() if immediate else False

    def _ensure_thread(self) -> None:
        if self.thread is not None and self.thread.is_alive() and self.pid == os.getpid():
            return
        self.pid = os.getpid()
        # The thread outlives this context, so it keeps the app itself, not the proxy.
        self.app = current_app._get_current_object()  # type: ignore[attr-defined]  # current_app is typed as the Flask app it stands for
        self.thread = threading.Thread(target=self._run, name="events-signal", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.window or SIGNAL_COALESCE_SECONDS)
            with self.lock:
                counts, self.counts = self.counts, {}
                signal = self.dirty
                if signal:
                    self.dirty, self.last = False, time.monotonic()
            if not (signal or counts):
                continue
            try:
                with self.app.app_context():
                    if counts:
                        _count_events(counts)
                    if signal:
                        request_drain()
            except Exception:
                log.warning("deferred drain signal failed", exc_info=True)


def _count_events(counts: dict[str, int]) -> None:
    """Add to the shared `webhook_events` counters in one Redis round trip (never raises)."""
    from portal import metrics

    counts = {k: v for k, v in counts.items() if v}
    if not counts:
        return
    try:
        pipe = redis_store.client.pipeline(transaction=False)
        for outcome, amount in counts.items():
            metrics.webhook_events.labels(outcome).inc(amount, pipeline=pipe)
        pipe.execute()
    except Exception:
        log.debug("event counters not recorded", exc_info=True)


_signal = _DrainSignal()


def request_drain(force: bool = False) -> bool:
    """Ask for a drain job: at most one waits in the queue at a time (a Redis flag guards it). Never raises:
    without Redis the events wait for the sweeper. Returns True when a job was queued."""
    client = redis_store.client
    if not force and _redis_pause.paused(client):
        return False  # Redis failed a moment ago: answer WAHA now instead of waiting on connection retries
    try:
        if not force and not client.set(DRAIN_FLAG, b"1", nx=True, ex=DRAIN_FLAG_TTL):
            return False  # a queued drain job that has not started yet will see these events
        enqueue(JOB_DRAIN_EVENTS, queue=QUEUE_EVENTS, retry=retry_policy(3, (5, 30, 120)), result_ttl=0)
        return True
    except Exception as exc:  # Redis down or unreachable: the rows are durable, the sweeper catches up
        _redis_pause.failed(client)
        log.warning("could not queue event processing (%s); the sweeper will", type(exc).__name__)
        return False


def _after_fork() -> None:
    global _signal
    _signal = _DrainSignal()
    _redis_pause.reset()


os.register_at_fork(after_in_child=_after_fork)
