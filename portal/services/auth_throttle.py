"""Failed API authentications: a per-address throttle checked before any credential is looked at, and one
audit row per address, tenant and minute that counts the failures instead of a row for each.

Counters live in Redis (shared by every web process), in fixed one-minute windows. An address that failed
API_AUTH_FAILURE_LIMIT times in the current minute is refused with 429 until the minute is over, valid
credentials included: checking them would hand the guesser the answer. When Redis is unreachable the throttle
steps aside (the API keeps working) and every failure gets its own audit row, as before.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from flask import current_app
from sqlalchemy.orm.attributes import flag_modified

from portal.extensions import db, redis_store
from portal.models import AuditEvent
from portal.services import audit
from portal.services.audit import Actor

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
_PREFIX = "portal:api-auth-fail"


def current_window(now: float | None = None) -> tuple[int, int]:
    """(window number, seconds until it ends)."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    return window, max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))


def address_key(ip: str | None, window: int) -> str:
    """The Redis key counting the failed authentications of `ip` in `window` (read by api.ratelimit too)."""
    return f"{_PREFIX}:{ip or '-'}:{window}"


def retry_after(ip: str | None) -> int | None:
    """Seconds `ip` must wait before its next API call, or None when it may authenticate now."""
    limit = int(current_app.config["API_AUTH_FAILURE_LIMIT"])
    window, remaining = current_window()
    try:
        failures = int(redis_store.client.get(address_key(ip, window)) or 0)
    except redis.RedisError:
        log.warning("API authentication throttle unavailable (Redis)", exc_info=True)
        return None
    return remaining if failures >= limit else None


def record_failure(ip: str | None, tenant_id: int | None, actor: Actor, reason: str, details: dict[str, Any]) -> None:
    """Count one failed authentication of `ip` and audit it: the first failure of a window (per address and
    tenant) writes the `auth.api_failed` row, later ones raise its `count`. Commits."""
    window, _ = current_window()
    counter_key = address_key(ip, window)
    row_key = f"{counter_key}:t{tenant_id or 0}"
    try:
        pipe = redis_store.client.pipeline()
        pipe.incr(counter_key)
        pipe.expire(counter_key, WINDOW_SECONDS * 2)
        pipe.incr(f"{row_key}:n")
        pipe.expire(f"{row_key}:n", WINDOW_SECONDS * 2)
        pipe.get(f"{row_key}:row")
        _, _, count, _, row_id = pipe.execute()
    except redis.RedisError:
        count, row_id = 1, None
        row_key = ""
    event = db.session.get(AuditEvent, int(row_id)) if row_id else None
    if event is None:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(window * WINDOW_SECONDS))
        event = audit.record(
            tenant_id,
            "auth.api_failed",
            actor,
            details={
                **details,
                "reason": reason,
                "count": int(count),
                "reasons": {reason: 1},
                "window_start": started,
                "window_seconds": WINDOW_SECONDS,
            },
        )
        db.session.commit()
        if row_key:
            try:
                redis_store.client.set(f"{row_key}:row", event.id, ex=WINDOW_SECONDS * 2)
            except redis.RedisError:
                pass
        return
    merged = dict(event.details or {})
    reasons = dict(merged.get("reasons") or {})
    reasons[reason] = int(reasons.get(reason, 0)) + 1
    # Redis's count is authoritative (concurrent requests may interleave their updates of this row).
    merged.update(details, reason=reason, reasons=reasons, count=max(int(count), int(merged.get("count", 0)) + 1))
    event.details = merged
    flag_modified(event, "details")
    db.session.commit()
