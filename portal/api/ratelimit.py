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
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from flask import current_app
from limits import parse

from portal.extensions import redis_store
from portal.redisconn import LuaScript
from portal.services import auth_throttle, token_cache
from portal.services.quotas.counters import api_minute_key

log = logging.getLogger(__name__)

_PREFIX = "portal:api-rate"

# KEYS[1] the address's failed authentications this minute, KEYS[2] the token cache epoch, KEYS[3] the caller's
# window ("" = only the throttle and the epoch), KEYS[4] the tenant's minute (plans: API requests per minute;
# "" = none). ARGV[1] throttle limit, ARGV[2] window in ms.
# Returns {throttled (0/1), calls in the window, ms until it ends, epoch, the tenant's calls, ms until its minute ends}.
_LUA = """
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = redis.call('GET', KEYS[2]) or ''
if failures >= tonumber(ARGV[1]) then return {1, 0, 0, epoch, 0, 0} end
if KEYS[3] == '' then return {0, 0, 0, epoch, 0, 0} end
local count = redis.call('INCR', KEYS[3])
local ttl = redis.call('PTTL', KEYS[3])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
  ttl = tonumber(ARGV[2])
end
if KEYS[4] == '' then return {0, count, ttl, epoch, 0, 0} end
local tcount = redis.call('INCR', KEYS[4])
local tttl = redis.call('PTTL', KEYS[4])
if tttl < 0 then
  redis.call('PEXPIRE', KEYS[4], 60000)
  tttl = 60000
end
return {0, count, ttl, epoch, tcount, tttl}
"""
_CHECK = LuaScript(_LUA)


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
        return _headers(self.limit, self.count, self.reset_in)

    def binding(self, tenant_limit: int | None, tenant_count: int, tenant_reset_in: float) -> Outcome:
        """This outcome, or the tenant's minute when the tenant's plan limit is the one exceeded (its headers)."""
        if tenant_limit is None or tenant_count <= tenant_limit or self.exceeded:
            return self
        return Outcome(
            self.throttle_wait, self.epoch, Limit(tenant_limit, 60, f"{tenant_limit}/60"), tenant_count, tenant_reset_in
        )


def _headers(limit: Limit, count: int, reset_in: float) -> dict[str, str]:
    wait = max(0, math.ceil(reset_in))
    return {
        "X-RateLimit-Limit": str(limit.amount),
        "X-RateLimit-Remaining": str(max(0, limit.amount - count)),
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


def _run(client: redis.Redis, keys: tuple[str, str, str, str], throttle_limit: int, window_ms: int) -> list:
    return _CHECK(client, keys, (throttle_limit, window_ms))


def check(ip: str | None, caller_key: str | None, tenant: Any = None) -> Outcome:
    """Throttle check, the caller's hit (when `caller_key` is given), the tenant's minute (when `tenant` is given:
    its plan's API requests per minute) and the token cache epoch: one round trip."""
    config = current_app.config
    limit = _limit(config["API_RATE_LIMIT"]) if caller_key is not None else None
    window, remaining = auth_throttle.current_window()
    counted = tenant is not None and limit is not None
    keys = (
        auth_throttle.address_key(ip, window),
        token_cache.EPOCH_KEY,
        f"{_PREFIX}:{limit.spec}:{caller_key}" if limit is not None else "",
        api_minute_key(tenant.id) if counted else "",
    )
    try:
        throttled, count, ttl_ms, epoch, tenant_count, tenant_ttl = _run(
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
    outcome = Outcome(None, _text(epoch), limit, int(count), int(ttl_ms) / 1000)
    if not counted:
        return outcome
    from portal.services.quotas import limit_of

    return outcome.binding(limit_of(tenant, "api_requests_per_minute"), int(tenant_count), int(tenant_ttl) / 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def reset_memory() -> None:
    """Forget the in-memory windows (tests)."""
    _memory.clear()
