"""Checks of inbound webhook events that do not need the database: text PostgreSQL cannot store, the replay window.

- NUL characters (and lone UTF-16 surrogates) are valid in JSON strings but refused by PostgreSQL's jsonb and text
  types. Such an event is stored with them removed from its payload, and its body as received goes to
  `webhook_events.raw`, so nothing WAHA sent is lost and the receiver never fails on it.
- Replay window: WAHA's HMAC covers the body, and the body carries the event's `timestamp` (ms). An event whose
  signed timestamp is older than WEBHOOK_REPLAY_WINDOW seconds, or more than WEBHOOK_CLOCK_SKEW seconds in the
  future, is not stored (a captured request replayed later, after its event id left the table, changes nothing).
  The `X-Webhook-Timestamp` header is not signed, so it is not trusted.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

# A JSON escape that may decode to NUL or a surrogate; anything else cannot put them into a parsed string.
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def needs_cleaning(body: bytes) -> bool:
    """Cheap pre-check on the raw body: False means no parsed string can hold NUL or a lone surrogate."""
    return _SUSPECT.search(body) is not None


def _clean(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str):
        if _BAD_CHARS.search(value):
            # NUL is dropped; a lone surrogate (half of a pair) cannot be kept as text either
            return _BAD_CHARS.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value), True
        return value, False
    if isinstance(value, list):
        changed = False
        out = []
        for item in value:
            item, dirty = _clean(item)
            changed |= dirty
            out.append(item)
        return (out if changed else value), changed
    if isinstance(value, dict):
        changed = False
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            new_key, dirty_key = _clean(key)
            item, dirty = _clean(item)
            changed |= dirty or dirty_key
            cleaned[new_key] = item
        return (cleaned if changed else value), changed
    return value, False


def clean_event(item: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The event with NUL removed (and lone surrogates replaced) everywhere, plus its original JSON text when
    anything changed (escapes kept, so the text holds no NUL either); `(item, None)` when it was clean."""
    cleaned, changed = _clean(item)
    if not changed:
        return item, None
    return cleaned, json.dumps(item, separators=(",", ":"))


def stale(item: dict[str, Any], now_ms: int, window: float, skew: float) -> bool:
    """True when the event's signed timestamp (ms) is outside [now - window, now + skew]. Events without a
    numeric timestamp are not judged (WAHA always sends one; the signature still binds the body)."""
    if window <= 0:
        return False
    stamp = item.get("timestamp")
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
        return False
    return stamp < now_ms - window * 1000 or stamp > now_ms + skew * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


class LogThrottle:
    """At most one log line per `interval` seconds per process; counts what was held back in between."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self.last = 0.0
        self.held = 0
        self.lock = threading.Lock()

    def ready(self) -> int | None:
        """The number of lines held back since the last one when a line may be written now, else None."""
        now = time.monotonic()
        with self.lock:
            if now - self.last < self.interval and self.last:
                self.held += 1
                return None
            held, self.held, self.last = self.held, 0, now
            return held
