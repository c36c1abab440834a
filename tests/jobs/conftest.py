"""A tiny local webhook receiver for forwarding tests: records requests, answers with scripted statuses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Receiver:
    """An HTTP/1.1 endpoint on 127.0.0.1 that answers each POST with the next scripted status (then 200) and keeps
    connections alive, as a production endpoint would (so tests can see the portal reuse them)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.delay = 0.0  # seconds before each answer (a slow endpoint)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {"-".join(p.capitalize() for p in k.split("-")): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(
                        {
                            "path": self.path.split("?")[0],
                            "headers": headers,
                            "body": body,
                            "connection": self.client_address[1],  # the client's port: one per TCP connection
                            "at": time.time(),
                        }
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = b"nope" if status >= 300 else b"ok"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


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
