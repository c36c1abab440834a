"""The portal's Redis failure policy: short timeouts, one quick retry, then fail fast through a circuit breaker.

redis-py's defaults retry a failed command three times with backoff (about 3.2 s against a refusing Redis)
and wait up to the socket timeout on a hung one, and every send, QR view and one-time secret read would pay
that while Redis is down. Instead, every connection of the app's client:

- connects and reads with a timeout of ``REDIS_TIMEOUT`` ms (default 500),
- retries a failed command once after 20 ms,
- reports each outcome to one in-process circuit breaker: after ``FAIL_MAX`` consecutive failures the circuit
  opens and every command fails at once with ``RedisUnavailable`` (a ``redis.ConnectionError``, so callers'
  ``except redis.RedisError`` handlers apply) for ``RESET_S`` seconds; then commands are tried again and the
  first success closes it. An outage is logged once when the circuit opens and once when Redis is back.

Each feature decides what it does without Redis (docs/deploy.md, "When Redis is down"); this module only
makes sure the answer "Redis is down" comes quickly.

RQ's workers and the scheduler use ``plain_client``: short connect timeout, no breaker, and the long read
timeout RQ sets for its blocking dequeue; their commands wait for Redis instead of failing fast.

Work that only rides along with something else (shared metric counters, the receiver's drain signal) goes one
step further with ``PauseAfterFailure``: after one failure it is not even tried for a while.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from portal.waha.breaker import LocalBreaker

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 500
FAIL_MAX = 3
RESET_S = 5.0
RETRY_PAUSE_S = 0.02

T = TypeVar("T")


class RedisUnavailable(redis.exceptions.ConnectionError):
    """Redis failed just now; the command was not tried (the circuit is open)."""


class _OneQuickRetry(Retry):
    """One retry after a short pause, never when the circuit is open."""

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[[Exception], Any] | Callable[[Exception, int], Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def retryable(error: Exception) -> bool:
            if isinstance(error, RedisUnavailable):
                return False
            return is_retryable(error) if is_retryable is not None else True

        return super().call_with_retry(do, fail, retryable, with_failure_count)


class RedisGuard:
    """The circuit breaker of one Redis, shared by all connections of a process; logs once per outage."""

    def __init__(self, name: str, fail_max: int = FAIL_MAX, reset_s: float = RESET_S) -> None:
        self.name = name
        self.breaker = LocalBreaker(fail_max, reset_s, name=f"redis {name}")
        self.down = False

    def check(self) -> None:
        """Raise RedisUnavailable while the circuit is open."""
        left = self.breaker.remaining_open_s()
        if left > 0:
            raise RedisUnavailable(f"Redis at {self.name} failed just now; not trying again for {left:.1f} s")

    def failed(self, error: Exception) -> None:
        """Count one failed connect, write or read."""
        if isinstance(error, RedisUnavailable):
            return
        self.breaker.record(failed=True)
        if not self.down and self.breaker.state == "open":
            self.down = True
            log.warning(
                "Redis at %s is unavailable (%s); failing fast, retrying every %.0f s",
                self.name,
                type(error).__name__,
                self.breaker.reset_s,
            )

    def succeeded(self) -> None:
        """Count one answer from Redis."""
        self.breaker.record(failed=False)
        if self.down:
            self.down = False
            log.warning("Redis at %s is reachable again", self.name)


_NETWORK_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

if TYPE_CHECKING:
    # The mixin goes in front of a redis-py connection class (fail_fast_client): its super() is that class.
    _Connection = redis.connection.AbstractConnection
else:
    _Connection = object


class _GuardedMixin(_Connection):
    """Checks the guard before each command and reports every network outcome to it."""

    guard: RedisGuard

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        self.guard.check()
        try:
            return super().connect(*args, **kwargs)
        except _NETWORK_ERRORS as exc:
            self.guard.failed(exc)
            raise

    def send_packed_command(self, *args: Any, **kwargs: Any) -> Any:
        self.guard.check()
        try:
            return super().send_packed_command(*args, **kwargs)
        except _NETWORK_ERRORS as exc:
            self.guard.failed(exc)
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().read_response(*args, **kwargs)
        except _NETWORK_ERRORS as exc:
            self.guard.failed(exc)
            raise
        self.guard.succeeded()
        return response


class PauseAfterFailure:
    """Skips optional Redis work for a while after it failed: one per feature and process.

    Counting a metric or signalling a drain must never make the work it rides along with wait on a Redis that
    failed a moment ago. After ``failed(client)``, ``paused(client)`` is true for ``seconds``; another client (the
    app was rebuilt with a new Redis) is tried at once.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._state: tuple[Any, float] = (None, 0.0)  # (the client that failed, monotonic time the pause ends)
        self._lock = threading.Lock()

    def paused(self, client: Any) -> bool:
        """True while a pause started by a failure of this client lasts."""
        failed, until = self._state
        return failed is client and time.monotonic() < until

    def failed(self, client: Any) -> bool:
        """Start (or extend) the pause for `client`; True when none was running, so the caller logs it once."""
        with self._lock:
            starts = not self.paused(client)
            self._state = (client, time.monotonic() + self.seconds)
        return starts

    def reset(self) -> None:
        """Forget any pause (a forked child starts with a connection of its own)."""
        self._state = (None, 0.0)


# First line of a script that reads Redis' TIME and then writes: Redis before 5 replicates a script's effects only
# when asked (later versions always do, and have no such function).
REPLICATE_EFFECTS = "if redis.replicate_commands then redis.replicate_commands() end\n"


class LuaScript:
    """A Lua script run in one round trip: EVALSHA by its digest, or EVAL the first time a Redis sees it (after a
    restart or a SCRIPT FLUSH). Unlike redis-py's `register_script`, it is bound to no client: callers pass the
    one they use (the app's client may be replaced, as tests do while Redis is "down")."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, client: redis.Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)


def _safe_location(pool: redis.ConnectionPool) -> str:
    kwargs = pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def fail_fast_client(url: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, guard: RedisGuard | None = None) -> redis.Redis:
    """A Redis client for ``url`` that follows the portal's failure policy (see the module docstring)."""
    timeout = timeout_ms / 1000
    pool = redis.ConnectionPool.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
        retry=_OneQuickRetry(ConstantBackoff(RETRY_PAUSE_S), 1),
    )
    guard = guard or RedisGuard(_safe_location(pool))
    base = pool.connection_class
    pool.connection_class = type(f"FailFast{base.__name__}", (_GuardedMixin, base), {"guard": guard})
    return redis.Redis(connection_pool=pool)


def plain_client(url: str, connect_timeout_ms: int = DEFAULT_TIMEOUT_MS) -> redis.Redis:
    """A Redis client for RQ's worker and scheduler loops: short connect timeout, one quick retry, no breaker.

    The read timeout is left to RQ, which sets one longer than its blocking dequeue.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout_ms / 1000,
        health_check_interval=30,
        retry=Retry(ConstantBackoff(RETRY_PAUSE_S), 1),
    )


def limiter_storage_options(timeout_ms: int = DEFAULT_TIMEOUT_MS) -> dict[str, Any]:
    """Connection options for Flask-Limiter's own Redis connection (same timeouts, one quick retry)."""
    timeout = timeout_ms / 1000
    return {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "retry": Retry(ConstantBackoff(RETRY_PAUSE_S), 1),
    }
