"""The /waha API's per-caller rate limit and the failed-authentication throttle, in one Redis round trip.

One Lua script does, for a caller already known (a cached token): check the address's failed authentications
(`services.auth_throttle`), count the call in the caller's fixed window (`API_RATE_LIMIT`, e.g. "600 per
minute"), and read the token cache's epoch (`services.token_cache`). Its answer carries everything the
`X-RateLimit-*` headers need, so they cost no further lookup. An unknown caller costs a second call of the same
script before its credential is checked (throttle and epoch only).

Redis down: the window is counted in this process's memory (each web process then allows the full limit), the
throttle steps aside as before, and the token cache is not trusted (every call reads its token again).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

import redis
from flask import current_app
from limits import parse

from portal.extensions import redis_store
from portal.services import auth_throttle, token_cache

log = logging.getLogger(__name__)

_PREFIX = "portal:api-rate"

# KEYS[1] the address's failed authentications this minute, KEYS[2] the token cache epoch, KEYS[3] the caller's
# window ("" = only the throttle and the epoch). ARGV[1] throttle limit, ARGV[2] window in ms.
# Returns {throttled (0/1), calls in the window, ms until it ends, epoch}.
_LUA = """
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = redis.call('GET', KEYS[2]) or ''
if failures >= tonumber(ARGV[1]) then return {1, 0, 0, epoch} end
if KEYS[3] == '' then return {0, 0, 0, epoch} end
local count = redis.call('INCR', KEYS[3])
local ttl = redis.call('PTTL', KEYS[3])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {0, count, ttl, epoch}
"""
_SHA = hashlib.sha1(_LUA.encode()).hexdigest()


@dataclass(frozen=True)
class Limit:
    amount: int
    seconds: int
    spec: str


@functools.lru_cache(maxsize=16)
def _limit(spec: str) -> Limit:
    item = parse(spec)
    return Limit(item.amount, int(item.get_expiry()), f"{item.amount}/{int(item.get_expiry())}")


@dataclass(frozen=True)
class Outcome:
    """One answer of the script: the throttle, the caller's window (None when not counted) and the epoch."""

    throttle_wait: int | None
    epoch: str | None  # None: Redis did not answer (the token cache cannot be trusted)
    limit: Limit | None = None
    count: int = 0
    reset_in: float = 0.0  # seconds until the window ends

    @property
    def exceeded(self) -> bool:
        return self.limit is not None and self.count > self.limit.amount

    def headers(self) -> dict[str, str]:
        """The X-RateLimit-* headers of the answer, from this outcome alone."""
        if self.limit is None:
            return {}
        wait = max(0, math.ceil(self.reset_in))
        return {
            "X-RateLimit-Limit": str(self.limit.amount),
            "X-RateLimit-Remaining": str(max(0, self.limit.amount - self.count)),
            "X-RateLimit-Reset": str(int(time.time() + wait)),
            "X-RateLimit-Retry-After": str(wait),
        }


class _MemoryWindows:
    """The fallback while Redis does not answer: fixed windows in this process's memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, float]] = {}

    def hit(self, key: str, seconds: int) -> tuple[int, float]:
        now = time.monotonic()
        with self._lock:
            count, ends = self._windows.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + seconds
                if len(self._windows) > 10000:
                    self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
            count += 1
            self._windows[key] = (count, ends)
        return count, ends - now

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()


_memory = _MemoryWindows()


def _run(client: redis.Redis, keys: tuple[str, str, str], throttle_limit: int, window_ms: int) -> list:
    args = (3, *keys, throttle_limit, window_ms)
    try:
        return client.evalsha(_SHA, *args)
    except redis.exceptions.NoScriptError:
        return client.eval(_LUA, *args)


def check(ip: str | None, caller_key: str | None) -> Outcome:
    """Throttle check, the caller's hit (when `caller_key` is given) and the token cache epoch: one round trip."""
    config = current_app.config
    limit = _limit(config["API_RATE_LIMIT"]) if caller_key is not None else None
    window, remaining = auth_throttle.current_window()
    keys = (
        auth_throttle.address_key(ip, window),
        token_cache.EPOCH_KEY,
        f"{_PREFIX}:{limit.spec}:{caller_key}" if limit is not None else "",
    )
    try:
        throttled, count, ttl_ms, epoch = _run(
            redis_store.client, keys, int(config["API_AUTH_FAILURE_LIMIT"]), limit.seconds * 1000 if limit else 0
        )
    except redis.RedisError:
        log.info("API rate limit counted in this process: Redis is unavailable")
        if limit is None:
            return Outcome(None, None)
        count, reset_in = _memory.hit(keys[2], limit.seconds)
        return Outcome(None, None, limit, count, reset_in)
    if throttled:
        return Outcome(remaining, _text(epoch))
    return Outcome(None, _text(epoch), limit, int(count), int(ttl_ms) / 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def reset_memory() -> None:
    """Forget the in-memory windows (tests)."""
    _memory.clear()
