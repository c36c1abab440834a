"""The Redis key of a session's cached QR answer, and dropping it when the session's status changes."""

from __future__ import annotations

import logging

import redis

from portal.extensions import redis_store

log = logging.getLogger(__name__)

# QR codes rotate every ~20 s (the first lives ~60 s); a few seconds of cache turns many viewers into one call.
QR_CACHE_SECONDS = 4.0


def _qr_key(session_id: str) -> str:
    return f"qr:{session_id}"


def drop_qr_cache(session_id: str) -> None:
    """Forget the cached QR of a session (its status changed or the QR rotated)."""
    try:
        redis_store.client.delete(_qr_key(session_id))
    except redis.RedisError:
        log.warning("could not drop the QR cache of session %s", session_id, exc_info=True)
