"""Circuit breakers, so a dead server fails fast instead of tying up every caller.

``LocalBreaker`` keeps its state in this process. pybreaker keeps the state machine (closed -> open after
``fail_max`` consecutive failures -> half-open after ``reset_timeout`` -> closed on success). Its ``call()``
holds one lock for the whole guarded call, which would serialise every request through it, so the guarded
call runs outside pybreaker: ``allow()`` checks the state before a request and ``record()`` feeds the outcome
back afterwards. Once the reset time has passed, one trial call at a time is let through.

``ServerBreaker`` is the breaker of one WAHA server. Given a ``RedisBreakerStore`` its state lives in Redis,
shared by every web process, RQ worker and the work-horses they fork, so a server that failed for one of them
fails fast for all. When Redis cannot be reached it falls back to a ``LocalBreaker`` of its own.

Nothing here knows Flask: the Redis client is passed in.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pybreaker

log = logging.getLogger(__name__)


class _Failure(Exception):
    """Stands in for a failed request when reporting it to pybreaker."""


def _succeed() -> None:
    return None


def _fail() -> None:
    raise _Failure()


class LocalBreaker:
    """In-process breaker: ``allow()`` before each call, ``record(failed)`` after it."""

    def __init__(self, fail_max: int, reset_s: float, name: str) -> None:
        self.reset_s = reset_s
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max, reset_timeout=reset_s, state_storage=self._storage, name=name
        )
        self._lock = threading.Lock()
        self._trial_since: float | None = None  # monotonic start of the trial call let through while half-open

    @property
    def state(self) -> str:
        """ "closed", "open" or "half-open"."""
        return self._breaker.current_state

    def remaining_open_s(self) -> float:
        """Seconds until the open circuit lets a trial call through (0 when it is not open)."""
        if self._breaker.current_state != pybreaker.STATE_OPEN:
            return 0.0
        opened_at = self._storage.opened_at
        if opened_at is None:
            return 0.0
        left = (opened_at + timedelta(seconds=self.reset_s) - datetime.now(UTC)).total_seconds()
        return max(left, 0.0)

    def allow(self) -> bool:
        """Return False while the circuit is open, or while another trial call is under way."""
        if self._breaker.current_state != pybreaker.STATE_OPEN:
            return True
        if self.remaining_open_s() > 0:
            return False
        with self._lock:
            now = time.monotonic()
            if self._trial_since is not None and now - self._trial_since < self.reset_s:
                return False
            self._trial_since = now
            return True

    def record(self, failed: bool) -> None:
        """Report one call's outcome (failed = the server is down or did not answer)."""
        if not failed and self._breaker.current_state == pybreaker.STATE_CLOSED and not self._breaker.fail_counter:
            return  # the common case: nothing to change, no lock to take
        with self._lock:
            self._trial_since = None
        try:
            self._breaker.call(_fail if failed else _succeed)
        except (_Failure, pybreaker.CircuitBreakerError):
            # Tripping the breaker, or hitting one that another thread just opened, is not our caller's error.
            pass


# The first line of a script that reads Redis' TIME and then writes (Redis before 5 replicates its effects only when
# asked). portal.redisconn has the same line for the portal's other scripts; this package imports nothing of the
# portal's.
_REPLICATE_EFFECTS = "if redis.replicate_commands then redis.replicate_commands() end\n"

# The check as a Lua function, shared by the store's script and by a caller that asks it in a round trip of its own
# (a send's gates: services.quotas.enforce.take_send). key: the server's breaker hash (f = consecutive failures,
# u = open until, t = trial until, Redis time in s); reset: seconds. Returns {allowed 0/1, "seconds until a call
# may pass", dirty 0/1}. A script using it first asks for effects replication (it reads Redis' TIME, then writes).
ALLOW_FN = """
local function allow(key, reset)
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
  local state = redis.call('HMGET', key, 'u', 't')
  if not state[1] then
    if redis.call('EXISTS', key) == 1 then return {1, '0', 1} end
    return {1, '0', 0}
  end
  local open_until = tonumber(state[1])
  if now < open_until then return {0, string.format('%.3f', open_until - now), 1} end
  local trial_until = tonumber(state[2] or '0')
  if now < trial_until then return {0, string.format('%.3f', trial_until - now), 1} end
  redis.call('HSET', key, 't', string.format('%.6f', now + tonumber(reset)))
  return {1, '0', 1}
end
"""
_ALLOW_LUA = _REPLICATE_EFFECTS + ALLOW_FN + "return allow(KEYS[1], ARGV[1])\n"

# How old a verdict asked ahead may be when the call comes (ServerBreaker.answered): older ones are asked again.
AHEAD_FRESH_S = 1.0

Verdict = tuple[bool, float, bool]  # (may a call pass, seconds until one may, does the server have recorded failures)


def verdict(answer: Any) -> Verdict:
    """The check's answer ({allowed, wait, dirty} from Redis) as a Verdict."""
    allowed, wait, dirty = answer
    return bool(int(allowed)), float(wait), bool(int(dirty))


# ARGV[1] 1 = failed, 0 = succeeded; ARGV[2] fail_max; ARGV[3] reset seconds. Returns seconds the circuit
# stays open (0 when closed).
_RECORD_LUA = (
    _REPLICATE_EFFECTS
    + """if ARGV[1] == '0' then redis.call('DEL', KEYS[1]) return '0' end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
local open_until = tonumber(redis.call('HGET', KEYS[1], 'u') or '0')
if failures >= tonumber(ARGV[2]) and now >= open_until then
  open_until = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'u', string.format('%.6f', open_until))
  redis.call('HDEL', KEYS[1], 't')
end
redis.call('EXPIRE', KEYS[1], math.max(3600, math.ceil(tonumber(ARGV[3]) * 10)))
if open_until > now then return string.format('%.3f', open_until - now) end
return '0'
"""
)


class RedisBreakerStore:
    """Breaker state in Redis, one hash per server, updated atomically by Lua with Redis' own clock."""

    prefix = "waha:breaker:"

    def __init__(self, client: Any) -> None:
        self.client = client
        self._allow = client.register_script(_ALLOW_LUA)
        self._record = client.register_script(_RECORD_LUA)

    def key(self, name: str) -> str:
        """The Redis key of the breaker called ``name`` (a base URL)."""
        return self.prefix + hashlib.sha256(name.encode()).hexdigest()[:24]

    def allow(self, name: str, reset_s: float) -> Verdict:
        """(may a call pass, seconds until one may, does the server have recorded failures)."""
        return verdict(self._allow(keys=[self.key(name)], args=[repr(float(reset_s))]))

    def record(self, name: str, failed: bool, fail_max: int, reset_s: float) -> float:
        """Record one outcome; returns the seconds the circuit stays open."""
        return float(self._record(keys=[self.key(name)], args=["1" if failed else "0", fail_max, repr(float(reset_s))]))

    def state(self, name: str) -> str:
        """ "closed", "open" or "half-open", as Redis has it."""
        fields = self.client.hmget(self.key(name), "u")
        if not fields[0]:
            return "closed"
        seconds, micros = self.client.time()
        return "open" if float(fields[0]) > seconds + micros / 1e6 else "half-open"


class ServerBreaker:
    """Breaker of one WAHA server: in Redis when a store is given, else (and while Redis fails) in process."""

    def __init__(self, fail_max: int, reset_s: float, name: str, store: RedisBreakerStore | None = None) -> None:
        self.fail_max = fail_max
        self.reset_s = reset_s
        self.name = name
        self.store = store
        self._local = LocalBreaker(fail_max, reset_s, name)
        self._dirty = threading.local()
        self._ahead = threading.local()  # a verdict asked for this thread's next check (`answered`)
        self._warned = False

    def _store_failed(self, what: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "WAHA circuit breaker for %s: Redis unavailable (%s); using this process's state", self.name, what
            )

    def _store_ok(self) -> None:
        self._warned = False

    @property
    def state(self) -> str:
        """ "closed", "open" or "half-open"."""
        if self.store is not None:
            try:
                state = self.store.state(self.name)
                self._store_ok()
                return state
            except Exception as exc:
                self._store_failed(type(exc).__name__)
        return self._local.state

    def gate(self) -> tuple[str, float] | None:
        """The Redis key and reset time of this breaker's check, for a caller that asks it (`ALLOW_FN`) in a round
        trip of its own and hands the verdict to `answered`; None when the state is kept in this process."""
        if self.store is None:
            return None
        return self.store.key(self.name), self.reset_s

    @contextmanager
    def answered(self, given: Verdict, asked_at: float) -> Iterator[None]:
        """Within the block, this thread's next `check()` takes `given`, asked of Redis by the caller at `asked_at`
        (time.monotonic()), instead of asking again, while it is at most `AHEAD_FRESH_S` old (a caller may wait
        for its moment in between: the send queue's campaign slot)."""
        self._ahead.value = (given, asked_at)
        try:
            yield
        finally:
            self._ahead.value = None

    def check(self) -> float:
        """0 when a call may go out now, else the seconds until one may (the circuit is open)."""
        ahead = getattr(self._ahead, "value", None)
        if ahead is not None:
            self._ahead.value = None
            (allowed, wait, dirty), asked_at = ahead
            age = time.monotonic() - asked_at
            if age <= AHEAD_FRESH_S:
                self._dirty.value = dirty
                self._store_ok()
                return 0.0 if allowed else max(wait - age, 0.001)
        if self.store is not None:
            try:
                allowed, wait, dirty = self.store.allow(self.name, self.reset_s)
                self._dirty.value = dirty
                self._store_ok()
                return 0.0 if allowed else max(wait, 0.001)
            except Exception as exc:
                self._store_failed(type(exc).__name__)
        if self._local.allow():
            return 0.0
        return max(self._local.remaining_open_s(), 0.001)

    def allow(self) -> bool:
        """True when a call may go out now."""
        return self.check() == 0.0

    def record(self, failed: bool) -> float:
        """Report one call's outcome; returns the seconds the circuit is now open (0 when it is not)."""
        self._local.record(failed)
        if self.store is not None:
            if not failed and not getattr(self._dirty, "value", True):
                return 0.0  # nothing recorded in Redis for this server: no round trip for the common case
            try:
                left = self.store.record(self.name, failed, self.fail_max, self.reset_s)
                self._store_ok()
                return left
            except Exception as exc:
                self._store_failed(type(exc).__name__)
        return self._local.remaining_open_s()


def retry_after_seconds(open_for: float) -> int:
    """Whole seconds a caller should wait for a circuit open for ``open_for`` seconds (at least 1)."""
    return max(1, math.ceil(open_for))
