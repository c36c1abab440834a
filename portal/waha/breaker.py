"""Circuit breaker for one WAHA server, so a dead server fails fast instead of tying up every caller.

pybreaker keeps the state machine (closed -> open after ``fail_max`` consecutive failures -> half-open after
``reset_timeout`` -> closed on success). Its ``call()`` holds one lock for the whole guarded call, which
would serialise every HTTP request through the client, so the HTTP call runs outside pybreaker: ``allow()``
checks the state before a request and ``record()`` feeds the outcome back afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pybreaker


class _Failure(Exception):
    """Stands in for a failed request when reporting it to pybreaker."""


def _succeed() -> None:
    return None


def _fail() -> None:
    raise _Failure()


class ServerBreaker:
    """Per-server breaker: ``allow()`` before each request, ``record(failed)`` after each response or error."""

    def __init__(self, fail_max: int, reset_s: float, name: str) -> None:
        self.reset_s = reset_s
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max, reset_timeout=reset_s, state_storage=self._storage, name=name
        )

    @property
    def state(self) -> str:
        """"closed", "open" or "half-open"."""
        return self._breaker.current_state

    def allow(self) -> bool:
        """Return False while the circuit is open and its reset time has not passed yet.

        Once the reset time has passed, requests are let through as trial calls; the first recorded
        outcome closes or re-opens the circuit.
        """
        if self._breaker.current_state != pybreaker.STATE_OPEN:
            return True
        opened_at = self._storage.opened_at
        return opened_at is None or datetime.now(UTC) >= opened_at + timedelta(seconds=self.reset_s)

    def record(self, failed: bool) -> None:
        """Report one request's outcome (failed = transport error or 5xx)."""
        try:
            self._breaker.call(_fail if failed else _succeed)
        except (_Failure, pybreaker.CircuitBreakerError):
            # Tripping the breaker, or hitting one that another thread just opened, is not our caller's error.
            pass
