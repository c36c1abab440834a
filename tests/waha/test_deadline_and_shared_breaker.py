"""WAHA_TIMEOUT bounds a whole call (retries included), and the breaker's state is shared through Redis.

The slow WAHA here is a real loopback socket that accepts connections and never answers; the shared breaker
uses the test Redis database.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from portal.waha import WahaClient, WahaSettings, errors
from portal.waha.breaker import AHEAD_FRESH_S, RedisBreakerStore
from tests.helpers import silent_listener


@pytest.fixture
def silent_waha() -> Iterator[str]:
    """A WAHA that accepts every connection and never answers (a hung server)."""
    with silent_listener() as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def clients() -> Iterator[list[WahaClient]]:
    made: list[WahaClient] = []
    yield made
    for client in made:
        client.close()


def _client(
    clients: list[WahaClient], base_url: str, store: RedisBreakerStore | None = None, **overrides
) -> WahaClient:
    values = {
        "base_url": base_url,
        "api_key": "k",
        "timeout_ms": 600,
        "retry_attempts": 3,
        "retry_backoff_s": 0.05,
        "retry_backoff_max_s": 0.1,
        "breaker_fail_max": 100,
    }
    values.update(overrides)
    client = WahaClient(WahaSettings(**values), breaker_store=store)
    clients.append(client)
    return client


def test_retried_call_against_silent_waha_ends_within_the_timeout(silent_waha, clients):
    client = _client(clients, silent_waha)

    started = time.monotonic()
    with pytest.raises(errors.WahaTimeout):
        client.list_sessions()
    elapsed = time.monotonic() - started

    # 1 + 3 tries of 0.6 s each took 2.4 s before; now the tries share one 0.6 s deadline.
    assert 0.5 < elapsed < 0.6 + 0.25


def test_wait_for_a_pooled_connection_ends_at_the_deadline(silent_waha, clients):
    client = _client(clients, silent_waha, retry_attempts=0, pool_max=1, pool_min=0, pool_acquire_timeout_ms=5000)
    busy = threading.Thread(target=lambda: pytest.raises(errors.WahaError, client.list_sessions), daemon=True)
    busy.start()
    time.sleep(0.1)  # the only connection is now held by the call in the other thread

    started = time.monotonic()
    with pytest.raises(errors.WahaUnavailable):
        client.get_session("s1")
    elapsed = time.monotonic() - started
    busy.join()

    assert elapsed < 0.6 + 0.25


def test_open_circuit_is_shared_by_clients_of_other_processes(redis_client, clients):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    # Two clients with separate in-process state stand for a web process and an RQ work-horse.
    web = _client(
        clients, closed, RedisBreakerStore(redis_client), retry_attempts=0, breaker_fail_max=2, breaker_reset_s=30
    )
    worker = _client(
        clients, closed, RedisBreakerStore(redis_client), retry_attempts=0, breaker_fail_max=2, breaker_reset_s=30
    )
    for _ in range(2):
        with pytest.raises(errors.WahaUnavailable):
            web.list_sessions()

    with pytest.raises(errors.WahaCircuitOpen) as opened:
        worker.list_sessions()

    assert worker.breaker_state == "open"
    assert 29 <= opened.value.retry_after <= 30


def test_failure_that_opens_the_circuit_carries_its_open_time(redis_client, clients):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    client = _client(
        clients, closed, RedisBreakerStore(redis_client), retry_attempts=0, breaker_fail_max=1, breaker_reset_s=12
    )

    with pytest.raises(errors.WahaUnavailable) as failed:
        client.list_sessions()

    assert failed.value.retry_after == 12


def test_shared_breaker_closes_for_everyone_after_a_successful_trial(redis_client, clients, live_sim):
    store = RedisBreakerStore(redis_client)
    first = _client(
        clients,
        live_sim.url,
        store,
        api_key=live_sim.api_key,
        retry_attempts=0,
        breaker_fail_max=1,
        breaker_reset_s=0.2,
    )
    second = _client(
        clients,
        live_sim.url,
        RedisBreakerStore(redis_client),
        api_key=live_sim.api_key,
        retry_attempts=0,
        breaker_fail_max=1,
        breaker_reset_s=0.2,
    )
    live_sim.fail_next(1, status=503)
    with pytest.raises(errors.WahaUnavailable):
        first.list_sessions()
    with pytest.raises(errors.WahaCircuitOpen):
        second.list_sessions()

    time.sleep(0.25)

    assert second.list_sessions() == []
    assert first.breaker_state == "closed"
    assert first.list_sessions() == []


def test_breaker_falls_back_to_process_state_when_redis_is_down(clients):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    dead_redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    client = _client(
        clients, closed, RedisBreakerStore(dead_redis), retry_attempts=0, breaker_fail_max=2, breaker_reset_s=30
    )
    for _ in range(2):
        with pytest.raises(errors.WahaUnavailable):
            client.list_sessions()

    with pytest.raises(errors.WahaCircuitOpen) as opened:
        client.list_sessions()

    assert opened.value.retry_after >= 29


def test_a_verdict_asked_ahead_serves_the_next_call_only(redis_client, clients, live_sim):
    client = _client(clients, live_sim.url, RedisBreakerStore(redis_client), api_key=live_sim.api_key, retry_attempts=0)
    asked_open = (False, 12.0, True)  # the verdict a send's gates brought back, the circuit open at the time

    with client.breaker.answered(asked_open, time.monotonic()):
        with pytest.raises(errors.WahaCircuitOpen) as paused:
            client.list_sessions()  # no second look at Redis, where the circuit is closed
        assert client.list_sessions() == []  # the next call asks Redis again

    assert paused.value.retry_after == 12
    with client.breaker.answered(asked_open, time.monotonic()):
        pass
    assert client.list_sessions() == []  # an unused verdict does not outlive its block
    with client.breaker.answered(asked_open, time.monotonic() - AHEAD_FRESH_S - 0.1):
        assert client.list_sessions() == []  # a verdict asked too long before the call is asked again


def test_a_breaker_asked_ahead_reads_the_state_other_processes_share(redis_client, clients):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    store = RedisBreakerStore(redis_client)
    web = _client(clients, closed, store, retry_attempts=0, breaker_fail_max=2, breaker_reset_s=30)
    worker = _client(clients, closed, RedisBreakerStore(redis_client), retry_attempts=0, breaker_fail_max=2)
    key, reset_s = web.breaker.gate()
    assert key == store.key(closed) and reset_s == 30
    for _ in range(2):
        with pytest.raises(errors.WahaUnavailable):
            worker.list_sessions()

    allowed, wait, dirty = store.allow(closed, reset_s)  # as the send's gates ask it (the same Lua function)

    assert (allowed, dirty) == (False, True) and 29 <= wait <= 30
