"""Fixtures of the send queue tests: a paired session with room to send, and the dispatcher run in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from portal.extensions import db
from portal.services import outreach


@pytest.fixture(autouse=True)
def _fast_tenant(request: pytest.FixtureRequest) -> None:
    """The queue tests set their own gaps; the token bucket leaves room unless a test lowers the rate."""
    if "tenant" in request.fixturenames:
        tenant = request.getfixturevalue("tenant")
        tenant.send_rate_per_minute = 6000
        db.session.commit()


@pytest.fixture
def working(tenant: Any, sim: Any) -> Any:
    from tests.builders import working_session

    return working_session(tenant, sim, "Sales")


@pytest.fixture
def dispatch() -> Callable[..., outreach.Report]:
    """Run the session's dispatcher in this process until nothing is due within `nap_max` seconds."""

    def run(session_id: str, *, run_for: float = 30.0, nap_max: float = 1.0) -> outreach.Report:
        report = outreach.run(session_id, run_for=run_for, nap_max=nap_max)
        db.session.expire_all()
        return report

    return run


class Arrivals:
    """When each request reached the simulator: (monotonic seconds, method, path)."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, str, str]] = []

    def times(self, path_part: str) -> list[float]:
        return [t for t, method, path in list(self.entries) if method == "POST" and path_part in path]


@pytest.fixture
def arrivals(sim: Any) -> Any:
    """Time every request that reaches the simulator (a WSGI wrapper around its app, removed afterwards)."""
    import time

    log = Arrivals()
    server = sim._server
    inner = server.app

    def timed(environ: dict, start_response: Any) -> Any:
        log.entries.append((time.monotonic(), environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
        return inner(environ, start_response)

    server.app = timed
    yield log
    server.app = inner
