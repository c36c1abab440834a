"""Webhook delivery the way WAHA does it (CONTRACT section 8).

One POST per event per URL, compact JSON, HMAC-SHA512 over the exact bytes,
retries on any failure. Deliveries run on a few worker threads; a session is
always served by the same worker, so first attempts of one session go out in
the order the events were produced, and a slow receiver never blocks the API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import random
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import requests

from .ids import uniqid
from .timers import Scheduler
from .validation import accepts

log = logging.getLogger("wahasim.webhooks")

DEFAULT_ATTEMPTS = 15
DEFAULT_DELAY = 2.0
DEFAULT_POLICY = "constant"


def serialize(envelope: dict) -> bytes:
    """The exact bytes WAHA sends: JSON.stringify output, UTF-8, no whitespace."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(key: str, body: bytes) -> str:
    """X-Webhook-Hmac: lowercase hex HMAC-SHA512 of the raw body, keyed with the UTF-8 key."""
    return hmac.new(key.encode("utf-8"), body, hashlib.sha512).hexdigest()


def retry_delay(policy: str, delay_seconds: float, retry_number: int) -> float:
    """Seconds to wait before retry number `retry_number` (1, 2, ...).

    exponential follows the documented series (about d, 2d, 4d, 8d with 0-20 % jitter),
    so the first retry waits about d as in the other policies.
    """
    if delay_seconds <= 0:
        return 0.0
    if policy == "linear":
        return retry_number * delay_seconds
    if policy == "exponential":
        base = (2 ** (retry_number - 1)) * delay_seconds
        return base + base * 0.2 * random.random()
    return delay_seconds


@dataclass
class Delivery:
    """One event to one URL, with everything needed to retry it unchanged."""

    url: str
    event: str
    event_id: str
    session: str
    body: bytes
    headers: dict
    policy: str
    delay_seconds: float
    retries: int
    generation: int
    attempt: int = 0
    request_id: str = field(default="")


class Dispatcher:
    """Queues deliveries per session shard and sends them from worker threads."""

    def __init__(
        self, scheduler: Scheduler, version: str, timeout: float = 10.0, workers: int = 4, log_limit: int = 10000
    ) -> None:
        self._scheduler = scheduler
        self._version = version
        self._timeout = timeout
        self._generation = 0
        self._log: deque = deque(maxlen=log_limit)
        self._log_lock = threading.Lock()
        self._queues: list[queue.Queue[Any]] = [queue.Queue() for _ in range(max(1, workers))]
        self._threads = []
        for i, q in enumerate(self._queues):
            thread = threading.Thread(target=self._work, args=(q,), name=f"wahasim-webhooks-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    # ---- producing -------------------------------------------------------

    def submit(self, session: str, webhooks: list[dict] | None, envelope: dict) -> int:
        """Queue one delivery per subscribed webhook; returns how many were queued."""
        body = serialize(envelope)
        count = 0
        for hook in webhooks or []:
            if not isinstance(hook, dict) or not hook.get("url"):
                continue
            if not accepts(hook.get("events"), envelope["event"]):
                continue
            retries = hook.get("retries") or {}
            headers = {
                "content-type": "application/json",
                "User-Agent": f"WAHA/{self._version}",
                "X-Webhook-Request-Id": uniqid(),
                "X-Webhook-Timestamp": str(envelope["timestamp"]),
            }
            key = (hook.get("hmac") or {}).get("key")
            if key:
                headers["X-Webhook-Hmac"] = sign(key, body)
                headers["X-Webhook-Hmac-Algorithm"] = "sha512"
            for custom in hook.get("customHeaders") or []:
                if custom.get("name"):
                    headers[custom["name"]] = str(custom.get("value", ""))
            delivery = Delivery(
                url=hook["url"],
                event=envelope["event"],
                event_id=envelope["id"],
                session=session,
                body=body,
                headers=headers,
                policy=retries.get("policy") or DEFAULT_POLICY,
                delay_seconds=float(retries["delaySeconds"])
                if retries.get("delaySeconds") is not None
                else DEFAULT_DELAY,
                retries=int(retries["attempts"]) if retries.get("attempts") is not None else DEFAULT_ATTEMPTS,
                generation=self._generation,
                request_id=headers["X-Webhook-Request-Id"],
            )
            self._queue_for(session).put(delivery)
            count += 1
        return count

    def _queue_for(self, session: str) -> queue.Queue:
        return self._queues[zlib.crc32(session.encode()) % len(self._queues)]

    # ---- control ---------------------------------------------------------

    def forget_pending(self) -> None:
        """Drop queued deliveries and pending retries (server restart or reset)."""
        self._generation += 1

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def log_entries(self) -> list[dict]:
        with self._log_lock:
            return list(self._log)

    def stop(self) -> None:
        self.forget_pending()
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            # Daemon threads: a worker stuck on a slow receiver must not hold up shutdown.
            if thread is not threading.current_thread():
                thread.join(timeout=0.2)

    # ---- sending ---------------------------------------------------------

    def _work(self, q: queue.Queue) -> None:
        http = requests.Session()
        while True:
            delivery = q.get()
            if delivery is None:
                http.close()
                return
            if delivery.generation != self._generation:
                continue
            try:
                self._attempt(http, q, delivery)
            except Exception:
                log.exception("webhook delivery crashed")

    def _attempt(self, http: requests.Session, q: queue.Queue, delivery: Delivery) -> None:
        delivery.attempt += 1
        started = time.monotonic()
        status = None
        error = None
        retry_after = 0.0
        try:
            response = http.post(
                delivery.url, data=delivery.body, headers=delivery.headers, timeout=self._timeout, allow_redirects=False
            )
            status = response.status_code
            response.close()
            retry_after = _retry_after(response.headers.get("Retry-After"))
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        self._record(delivery, status, error, ok, time.monotonic() - started)
        if ok:
            return
        retry_number = delivery.attempt  # retries done so far + 1
        if retry_number > delivery.retries:
            log.warning("webhook %s to %s dropped after %d attempts", delivery.event, delivery.url, delivery.attempt)
            return
        delay = max(retry_delay(delivery.policy, delivery.delay_seconds, retry_number), retry_after)

        def again() -> None:
            if delivery.generation == self._generation:
                q.put(delivery)

        self._scheduler.call_later(delay, again)

    def _record(self, delivery: Delivery, status, error, ok: bool, duration: float) -> None:
        entry = {
            "time": int(time.time() * 1000),
            "url": delivery.url,
            "event": delivery.event,
            "event_id": delivery.event_id,
            "session": delivery.session,
            "request_id": delivery.request_id,
            "attempt": delivery.attempt,
            "status": status,
            "ok": ok,
            "error": error,
            "duration_ms": round(duration * 1000, 1),
        }
        with self._log_lock:
            self._log.append(entry)
        log.debug("webhook %s", entry)


def _retry_after(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0
