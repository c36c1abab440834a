"""Webhook intake: the per-process cache of session HMAC keys, the signature and body checks, and `ingest`.

`ingest` verifies one request against its session's key, drops events outside the replay window, stores the rest
(`writer._store`: one statement, one commit; a repeated event id is a no-op) and signals processing
(`signal`). Nothing is stored for an unknown session.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import WahaSession
from portal.services import webhook_input
from portal.services.errors import Invalid, NotFound, Unauthorized
from portal.services.events import signal as drain_signal
from portal.services.events.writer import _store

log = logging.getLogger(__name__)

# Body limits of the receiver: WAHA sends one event per request; a batch is an array (our own tools, replays).
MAX_EVENT_BYTES = 1024 * 1024
MAX_BATCH_BYTES = 10 * 1024 * 1024
MAX_BATCH_EVENTS = 1000


@dataclass
class IngestResult:
    """What one webhook request did: events written (new), repeats skipped, whether processing was signalled."""

    received: int
    stored: int
    ignored: bool = False
    queued: bool = False
    stale: int = 0  # outside the replay window: not stored


@dataclass(frozen=True)
class _SessionKey:
    session_id: str
    tenant_id: int
    name: str
    key: bytes
    expires: float


class _KeyCache:
    """Per-process cache of session HMAC keys, so a webhook costs no key lookup (keys are decrypted once)."""

    TTL = 60.0
    MAX = 20000

    def __init__(self) -> None:
        self._items: dict[str, _SessionKey] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str) -> _SessionKey | None:
        item = self._items.get(session_id)
        if item is not None and item.expires > time.monotonic():
            return item
        return None

    def put(self, item: _SessionKey) -> None:
        with self._lock:
            if len(self._items) >= self.MAX:
                self._items.clear()
            self._items[item.session_id] = item

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._items.pop(session_id, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_keys = _KeyCache()
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UNKNOWN_SESSION_WAITS = (0.05, 0.1, 0.2, 0.4)  # seconds between look-ups of a session id not found (yet)
_late_waiters = threading.BoundedSemaphore(4)  # requests of one process that may wait so; the rest answer at once


def _after_fork() -> None:
    global _late_waiters
    _keys.clear()
    _late_waiters = threading.BoundedSemaphore(4)


os.register_at_fork(after_in_child=_after_fork)


def forget_session_key(session_id: str) -> None:
    """Drop a cached HMAC key (after a key change or a delete) in this process."""
    _keys.drop(session_id)


def _lookup_key(session_id: str) -> _SessionKey | None:
    row = db.session.execute(
        select(WahaSession.id, WahaSession.tenant_id, WahaSession.name, WahaSession.hmac_key).where(
            WahaSession.id == session_id
        )
    ).first()
    db.session.rollback()  # end the read transaction: the insert runs on its own connection
    if row is None:
        return None
    item = _SessionKey(row.id, row.tenant_id, row.name, row.hmac_key.encode(), time.monotonic() + _KeyCache.TTL)
    _keys.put(item)
    return item


def _session_key(session_id: str) -> _SessionKey | None:
    cached = _keys.get(session_id)
    if cached is not None:
        return cached
    if not _UUID_RE.match(session_id or ""):
        return None
    item = _lookup_key(session_id)
    if item is not None or not _late_waiters.acquire(blocking=False):
        return item
    try:
        # WAHA emits a new session's first events while the portal is still committing the row it created
        # before calling WAHA: give that commit a moment rather than dropping the events as unknown.
        for delay in UNKNOWN_SESSION_WAITS:
            time.sleep(delay)
            item = _lookup_key(session_id)
            if item is not None:
                return item
        return None
    finally:
        _late_waiters.release()


def signature_ok(key: bytes, body: bytes, signature: str | None) -> bool:
    """True when `signature` is the lowercase hex HMAC-SHA512 of `body` under `key` (constant-time compare)."""
    if not signature:
        return False
    expected = hmac.new(key, body, hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """One event object or a JSON array of them; Invalid when the body is not that."""
    try:
        # UTF-8 only (what WAHA sends and what is stored); too deep a nesting is bad input, not a crash
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Invalid(N_("The body is not valid JSON."), code="bad_json") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise Invalid(N_("The batch is empty."), code="bad_event")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("event"), str):
            raise Invalid(N_("Every event must be an object with an 'event' name."), code="bad_event")
    return items


def _event_id(item: dict[str, Any], raw: bytes | None) -> str:
    event_id = item.get("id")
    if isinstance(event_id, str) and 0 < len(event_id) <= 64:
        return event_id
    # WAHA always sends an id; without one, the content itself makes a repeat recognisable.
    digest = hashlib.sha256(raw if raw is not None else json.dumps(item, sort_keys=True).encode()).hexdigest()
    return "sha_" + digest[:60]


def ingest(session_param: str | None, body: bytes, signature: str | None) -> IngestResult:
    """Verify, store and signal one webhook request. Raises NotFound (unknown or missing session: nothing is
    stored), Unauthorized (bad HMAC) or Invalid (bad JSON). Events outside the replay window are not stored."""
    session_key = _session_key(session_param or "")
    if session_key is None:
        raise _unknown_session(session_param, body)
    if not signature_ok(session_key.key, body, signature):
        raise Unauthorized(N_("The webhook signature does not match."), code="bad_signature")
    items = parse_events(body)
    if len(items) > MAX_BATCH_EVENTS:
        raise Invalid(
            N_f("A batch holds at most %(MAX_BATCH_EVENTS)s events.", MAX_BATCH_EVENTS=MAX_BATCH_EVENTS),
            code="batch_too_large",
        )
    config = current_app.config
    window = float(config.get("WEBHOOK_REPLAY_WINDOW", REPLAY_WINDOW_SECONDS))
    skew = float(config.get("WEBHOOK_CLOCK_SKEW", CLOCK_SKEW_SECONDS))
    now = webhook_input.now_ms()
    fresh = [n for n, item in enumerate(items) if not webhook_input.stale(item, now, window, skew)]
    stale = len(items) - len(fresh)
    if stale:
        _log_stale(session_key.session_id, stale, window)
    batch = _Incoming.of(items, body, None if not stale else fresh)
    try:
        stored = _store(batch, session_key.session_id, session_key.tenant_id, "pending") if batch.items else 0
    except IntegrityError:
        # The session was deleted since its key was cached: its events have no one to go to.
        forget_session_key(session_key.session_id)
        raise _unknown_session(session_param, body) from None
    drain_signal._signal.count(received=len(items), duplicate=len(batch.items) - stored, stale=stale)
    queued = drain_signal._signal.after_commit() if stored else False
    return IngestResult(received=len(items), stored=stored, queued=queued, stale=stale)


REPLAY_WINDOW_SECONDS = 3600.0  # WEBHOOK_REPLAY_WINDOW: WAHA's retries to the portal span ~20 minutes
CLOCK_SKEW_SECONDS = 300.0  # WEBHOOK_CLOCK_SKEW: how far in the future an event's timestamp may be
_unknown_log = webhook_input.LogThrottle(60.0)
_stale_log = webhook_input.LogThrottle(60.0)


def _unknown_session(session_param: str | None, body: bytes) -> NotFound:
    """Count a request for no known session (nothing is stored) and log it at most once a minute."""
    drain_signal._signal.count(unknown_session=1)
    held = _unknown_log.ready()
    if held is not None:
        log.warning(
            "webhook for unknown session %r (%d bytes) refused with 404%s",
            (session_param or "")[:64],
            len(body),
            f"; {held} more since the last such line" if held else "",
        )
    return NotFound(N_("No session with this id."), code="session_not_found")


def _log_stale(session_id: str, count: int, window: float) -> None:
    held = _stale_log.ready()
    if held is not None:
        log.warning(
            "session %s: %d event(s) with a timestamp outside the %.0f s replay window not stored%s",
            session_id,
            count,
            window,
            f"; {held} more such requests since the last line" if held else "",
        )


@dataclass
class _Incoming:
    """The events of one request. When nothing had to change, PostgreSQL parses the raw text itself (nothing is
    serialized again); events outside the replay window are left out, and NUL characters are cleaned out of the
    payload (the event as received is kept in `raws`)."""

    items: list[dict[str, Any]]
    body: bytes
    is_array: bool
    raws: list[str | None]
    changed: bool = False

    @classmethod
    def of(cls, items: list[dict[str, Any]], body: bytes, keep: list[int] | None) -> _Incoming:
        is_array = body.lstrip()[:1] == b"["
        raws: list[str | None] = [None] * len(items)
        changed = keep is not None
        if webhook_input.needs_cleaning(body):
            cleaned = []
            for n, item in enumerate(items):
                item, raw = webhook_input.clean_event(item)
                cleaned.append(item)
                if raw is not None:
                    raws[n] = raw if is_array else body.decode("utf-8")
                    changed = True
            items = cleaned
        if keep is not None:
            items, raws = [items[n] for n in keep], [raws[n] for n in keep]
        return cls(items, body, is_array, raws, changed)

    def event_ids(self) -> list[str]:
        raw = None if self.is_array else self.body
        return [_event_id(item, raw) for item in self.items]

    def text(self) -> str:
        """The JSON text PostgreSQL stores: the body as sent, or the events serialized after a change."""
        if not self.changed:
            return self.body.decode("utf-8")
        return json.dumps(self.items if self.is_array else self.items[0], separators=(",", ":"))
