"""Connection pool behaviour against a real loopback HTTP server: bounded waits, concurrency, idle connections."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from portal.waha import errors


class FakeWaha:
    """A threaded loopback HTTP server: /api/sessions/<name> answers with the client's port; "slow" holds on.

    Built on http.server rather than werkzeug because werkzeug's dev server closes every connection, and
    these tests need keep-alive to observe connection reuse.
    """

    def __init__(self, hold_s: float = 0.6) -> None:
        self.hold_s = hold_s
        self.slow_started = threading.Event()
        self.slow_finished = threading.Event()
        self.pair = threading.Barrier(2, timeout=2)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def do_GET(self) -> None:
                status, body = fake.answer(self.path.rsplit("/", 1)[-1], self.client_address[1])
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def answer(self, name: str, port: int) -> tuple[int, bytes]:
        status = 200
        if name == "slow":
            self.slow_started.set()
            time.sleep(self.hold_s)
            self.slow_finished.set()
        elif name == "pair":
            try:
                self.pair.wait()  # passes only while two requests are in the server at once
            except threading.BrokenBarrierError:
                status = 500
        return status, json.dumps({"name": name, "port": port}).encode()

    def __enter__(self) -> FakeWaha:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server():
    with FakeWaha() as fake:
        yield fake


def in_thread(func, *args) -> threading.Thread:
    thread = threading.Thread(target=func, args=args, daemon=True)
    thread.start()
    return thread


def test_call_fails_when_no_connection_frees_within_acquire_timeout(server, make_client):
    waha_client = make_client(base_url=server.url, pool_max=1, pool_acquire_timeout_ms=200)
    holder = in_thread(waha_client.get_session, "slow")
    assert server.slow_started.wait(2)

    with pytest.raises(errors.WahaPoolExhausted):
        waha_client.get_session("fast")

    # It gave up while the only connection was still busy, not after it freed up.
    assert not server.slow_finished.is_set()
    holder.join()


def test_call_waits_for_a_connection_that_frees_in_time(make_client):
    with FakeWaha(hold_s=0.2) as server:
        waha_client = make_client(base_url=server.url, pool_max=1, pool_acquire_timeout_ms=5000)
        holder = in_thread(waha_client.get_session, "slow")
        assert server.slow_started.wait(2)

        assert waha_client.get_session("fast")["name"] == "fast"
        holder.join()


def test_pool_max_connections_run_at_the_same_time(server, make_client):
    waha_client = make_client(base_url=server.url, pool_max=2)
    results = []
    threads = [in_thread(lambda: results.append(waha_client.get_session("pair")["name"])) for _ in range(2)]
    for thread in threads:
        thread.join(5)

    assert results == ["pair", "pair"]


def test_connection_is_reused_within_idle_timeout(server, make_client):
    waha_client = make_client(base_url=server.url, pool_min=0, pool_idle_timeout_ms=5000)

    first = waha_client.get_session("a")["port"]
    second = waha_client.get_session("b")["port"]

    assert first == second


def test_idle_connection_is_dropped_after_idle_timeout(server, make_client):
    waha_client = make_client(base_url=server.url, pool_min=0, pool_idle_timeout_ms=50)
    first = waha_client.get_session("a")["port"]

    time.sleep(0.1)

    assert waha_client.get_session("b")["port"] != first


def test_pool_min_connections_survive_idle_timeout(server, make_client):
    waha_client = make_client(base_url=server.url, pool_min=1, pool_idle_timeout_ms=50)
    first = waha_client.get_session("a")["port"]

    time.sleep(0.1)

    assert waha_client.get_session("b")["port"] == first


def test_slow_server_raises_waha_timeout(server, make_client):
    waha_client = make_client(base_url=server.url, timeout_ms=100, retry_attempts=0)

    with pytest.raises(errors.WahaTimeout):
        waha_client.get_session("slow")
