"""A requests adapter whose urllib3 pools bound the wait for a connection and drop idle connections.

requests never passes urllib3's ``pool_timeout``, so with ``pool_block=True`` a caller would wait forever for
a free connection. The pool classes here default that wait to the acquire timeout and raise
``urllib3.exceptions.EmptyPoolError`` when it runs out.

Idle handling: every connection is stamped when it goes back into the pool. Before a connection is handed
out, pooled connections idle for longer than the idle timeout are closed, except the ``pool_min`` most
recently used ones. That is all ``pool_min`` means here: connections are opened lazily (there is no
warm-up), and the server may still close the ones we keep (Node's keep-alive timeout is 5 s), in which case
urllib3 notices on checkout and reconnects.

A caller with a deadline for its whole call (the client's ``timeout_ms``) sets it with ``acquire_deadline``:
the wait for a connection then ends at the deadline too, whichever comes first, and the time spent waiting
comes off that request's connect and read timeouts.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.timeout import Timeout

_IDLE_SINCE = "_waha_idle_since"
_call = threading.local()


@contextlib.contextmanager
def acquire_deadline(deadline: float) -> Iterator[None]:
    """Within this block, waiting for a pooled connection ends by ``deadline`` (a ``time.monotonic()`` value)."""
    previous = getattr(_call, "deadline", None)
    _call.deadline = deadline
    try:
        yield
    finally:
        _call.deadline = previous


def _at_most(value, limit: float) -> float:
    return min(value, limit) if isinstance(value, (int, float)) else limit


if TYPE_CHECKING:
    _PoolBase = HTTPConnectionPool  # the mixin is only ever mixed into urllib3's pools
else:
    _PoolBase = object


class _BoundedPoolMixin(_PoolBase):
    """Acquire timeout and idle trimming for a urllib3 connection pool."""

    acquire_timeout: float
    idle_timeout: float
    keep_idle: int

    def __init__(self, *args, acquire_timeout: float, idle_timeout: float, keep_idle: int, **kwargs):
        self.acquire_timeout = acquire_timeout
        self.idle_timeout = idle_timeout
        self.keep_idle = keep_idle
        super().__init__(*args, **kwargs)

    def _get_conn(self, timeout=None):
        self._close_idle_connections()
        if timeout is None:
            timeout = self.acquire_timeout
            deadline = getattr(_call, "deadline", None)
            if deadline is not None:
                timeout = max(min(timeout, deadline - time.monotonic()), 0.001)
        return super()._get_conn(timeout=timeout)

    def _make_request(self, conn, method, url, *args, **kwargs):
        # The time spent waiting for this connection comes off the connect and read timeouts.
        deadline = getattr(_call, "deadline", None)
        if deadline is not None:
            left = max(deadline - time.monotonic(), 0.001)
            asked = self._get_timeout(kwargs.get("timeout", self.timeout))
            kwargs["timeout"] = Timeout(
                connect=_at_most(asked.connect_timeout, left), read=_at_most(asked.read_timeout, left)
            )
        return super()._make_request(conn, method, url, *args, **kwargs)

    def _put_conn(self, conn):
        if conn is not None:
            setattr(conn, _IDLE_SINCE, time.monotonic())
        super()._put_conn(conn)

    def _close_idle_connections(self) -> None:
        slots = self.pool
        if slots is None:
            return
        cutoff = time.monotonic() - self.idle_timeout
        with slots.mutex:
            # A LifoQueue hands out from the end, so the newest connections sit last.
            open_conns = [c for c in slots.queue if c is not None and getattr(c, "sock", None) is not None]
            candidates = open_conns[: max(len(open_conns) - self.keep_idle, 0)]
            for conn in candidates:
                if getattr(conn, _IDLE_SINCE, cutoff) < cutoff:
                    conn.close()


class BoundedHTTPConnectionPool(_BoundedPoolMixin, HTTPConnectionPool):
    """HTTP pool with acquire timeout and idle trimming."""


class BoundedHTTPSConnectionPool(_BoundedPoolMixin, HTTPSConnectionPool):
    """HTTPS pool with acquire timeout and idle trimming."""


class BoundedPoolAdapter(HTTPAdapter):
    """HTTPAdapter with ``pool_max`` blocking connections, a bounded wait for one, and idle trimming."""

    def __init__(self, *, pool_max: int, pool_min: int, acquire_timeout_s: float, idle_timeout_s: float):
        self._pool_options: dict[str, Any] = {
            "acquire_timeout": acquire_timeout_s,
            "idle_timeout": idle_timeout_s,
            "keep_idle": pool_min,
        }
        # max_retries=0: retries are decided by the client, which knows which calls are safe to repeat.
        super().__init__(pool_connections=1, pool_maxsize=pool_max, pool_block=True, max_retries=0)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        """Build the pool manager with the bounded pool classes (called by HTTPAdapter)."""
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            # urllib3 builds a pool by calling what it finds here; a partial carries our options along
            "http": functools.partial(BoundedHTTPConnectionPool, **self._pool_options),  # type: ignore[dict-item]
            "https": functools.partial(BoundedHTTPSConnectionPool, **self._pool_options),  # type: ignore[dict-item]
        }
