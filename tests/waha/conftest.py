"""Fixtures for the WAHA client tests: fixture files, clients with test settings, `responses` for WAHA HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import responses

from portal.waha import WahaClient, WahaSettings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "waha"


@pytest.fixture
def load_fixture() -> Callable[[str], object]:
    """Read a JSON fixture from tests/fixtures/waha/."""

    def load(name: str) -> object:
        return json.loads((FIXTURES / name).read_text(encoding="utf-8"))

    return load


@pytest.fixture
def waha_url() -> str:
    """Where the mocked WAHA lives."""
    return "http://waha.test:3000"


@pytest.fixture
def api_key() -> str:
    """The API key the test client sends."""
    return "test-key-0123"


@pytest.fixture
def make_client(waha_url, api_key) -> Iterator[Callable[..., WahaClient]]:
    """Build clients with test settings (two retries, near-zero backoff); overrides go to WahaSettings."""
    made: list[WahaClient] = []

    def make(observer=None, **overrides) -> WahaClient:
        values = {
            "base_url": waha_url,
            "api_key": api_key,
            "timeout_ms": 2000,
            "retry_attempts": 2,
            "retry_backoff_s": 0.001,
            "retry_backoff_max_s": 0.002,
        }
        values.update(overrides)
        waha_client = WahaClient(WahaSettings(**values), observer=observer)
        made.append(waha_client)
        return waha_client

    yield make
    for waha_client in made:
        waha_client.close()


@pytest.fixture
def waha_client(make_client) -> WahaClient:
    """A client for the mocked WAHA with two retries."""
    return make_client()


@pytest.fixture
def waha() -> Iterator[responses.RequestsMock]:
    """Mocked WAHA HTTP; every registered response must be used."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture(scope="module")
def live_sim_server() -> Iterator[object]:
    """One wahasim server per test module, on loopback with a fast boot (stopping one takes ~0.5 s)."""
    from wahasim.testing import SimServer

    server = SimServer(api_key="sim-key", starting_delay=0.01, ack_delay=0.01)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live_sim(live_sim_server) -> object:
    """The module's wahasim server, emptied (no sessions, no latency, no pending failures) for this test."""
    live_sim_server.reset()
    return live_sim_server


@pytest.fixture
def live_client(make_client, live_sim) -> WahaClient:
    """A client for the wahasim server, with two retries."""
    return make_client(base_url=live_sim.url, api_key=live_sim.api_key)
