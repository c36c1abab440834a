"""A tiny local webhook receiver for forwarding tests: records requests, answers with scripted statuses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that answers each POST with the next scripted status (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.delay = 0.0  # seconds before each answer (a slow endpoint)
        self._lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def app(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.requests.append({"path": request.path, "headers": dict(request.headers), "body": request.get_data()})
            status = self.statuses.pop(0) if self.statuses else 200
        if self.delay:
            time.sleep(self.delay)
        return Response("nope" if status >= 300 else "ok", status=status)(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()


@pytest.fixture(autouse=True)
def _waha_webhooks_elsewhere(request: pytest.FixtureRequest) -> Iterator[None]:
    """Sessions created by a test send their simulator events to a closed port, unless the test runs the live
    portal: a test that posts its own events must not also receive the simulator's from an earlier live server."""
    from tests.helpers import quiet_waha_webhooks

    if "live_server" in request.fixturenames or "app" not in request.fixturenames:
        yield
        return
    with quiet_waha_webhooks(request.getfixturevalue("app")):
        yield
