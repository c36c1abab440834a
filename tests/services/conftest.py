"""Fixtures for the session and message service tests: WAHA request log, sessions in a given state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from portal.models import WahaSession
from tests.builders import new_session, scanning_session, working_session


class WahaRequestLog:
    """Every HTTP request the simulator received while the fixture was active, as (method, path)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.entries.append((method, path))

    def count(self, method: str, path_part: str) -> int:
        with self._lock:
            return sum(1 for m, p in self.entries if m == method and path_part in p)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()


@pytest.fixture
def waha_requests(sim: Any) -> Iterator[WahaRequestLog]:
    """Log the requests that reach the simulator (a WSGI wrapper around its app, removed afterwards)."""
    log = WahaRequestLog()
    server = sim._server
    inner = server.app

    def logged(environ: dict, start_response: Callable) -> Any:
        log.record(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        return inner(environ, start_response)

    server.app = logged
    yield log
    server.app = inner


@pytest.fixture
def make_session(tenant: Any, sim: Any) -> Callable[..., WahaSession]:
    """Create a session through the service (tests.builders); `status` "SCAN_QR_CODE" waits for the QR,
    "WORKING" pairs it."""

    def make(name: str = "Sales", status: str | None = None, owner: Any = None, **kwargs: Any) -> WahaSession:
        owner = owner or tenant
        if status == "SCAN_QR_CODE":
            return scanning_session(owner, name, **kwargs)
        if status == "WORKING":
            return working_session(owner, sim, name, **kwargs)
        return new_session(owner, name, **kwargs)

    return make
