"""Per-session send pacing (GCRA token bucket) on real Redis, and on fakeredis as in the embedded default."""

from __future__ import annotations

import threading
import time

import fakeredis
import pytest

from portal.extensions import redis_store
from portal.services import pacing
from portal.services.errors import RateLimited
from tests.helpers import unreachable_redis


def allowed(session_id: str, rate: int, *, burst: int | None = None) -> bool:
    try:
        pacing.acquire(session_id, rate, burst=burst)
        return True
    except RateLimited:
        return False


def test_acquire_allows_the_burst_then_limits(ctx):
    results = [allowed("s1", 60, burst=3) for _ in range(4)]

    assert results == [True, True, True, False]


def test_acquire_refusal_says_when_to_retry(ctx):
    pacing.acquire("s1", 2, burst=1)

    with pytest.raises(RateLimited) as caught:
        pacing.acquire("s1", 2, burst=1)

    assert caught.value.status == 429
    assert 29 <= caught.value.retry_after <= 30


def test_acquire_frees_a_slot_after_one_interval(ctx):
    pacing.acquire("s1", 600, burst=1)  # one message every 0.1 s
    assert not allowed("s1", 600, burst=1)

    time.sleep(0.12)

    assert allowed("s1", 600, burst=1)


def test_acquire_paces_each_session_on_its_own(ctx):
    pacing.acquire("s1", 1, burst=1)

    assert allowed("s2", 1, burst=1)


def test_acquire_default_burst_is_a_tenth_of_the_rate(ctx):
    results = [allowed("s1", 30) for _ in range(4)]

    assert results == [True, True, True, False]


def test_acquire_concurrent_senders_share_one_bucket(app):
    outcomes: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def send() -> None:
        with app.app_context():
            barrier.wait()
            ok = allowed("busy", 60, burst=5)
            with lock:
                outcomes.append(ok)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count(True) == 5


def test_acquire_with_rate_zero_refuses_every_send(ctx):
    with pytest.raises(RateLimited):
        pacing.acquire("s1", 0)


def test_acquire_works_on_the_embedded_in_memory_redis(ctx, monkeypatch):
    monkeypatch.setattr(redis_store, "_client", fakeredis.FakeRedis())

    results = [allowed("s1", 60, burst=2) for _ in range(3)]

    assert results == [True, True, False]


def test_acquire_keeps_pacing_after_redis_forgot_its_scripts(ctx):
    pacing.acquire("s1", 60, burst=1)
    redis_store.client.script_flush()  # as after a Redis restart

    assert not allowed("s1", 60, burst=1)
    assert allowed("s2", 60, burst=1)


def test_reset_forgets_the_sessions_bucket(ctx):
    pacing.acquire("s1", 1, burst=1)

    pacing.reset("s1")

    assert allowed("s1", 1, burst=1)


def test_acquire_lets_sends_through_when_redis_is_down(ctx, monkeypatch):
    monkeypatch.setattr(redis_store, "_client", unreachable_redis())

    assert allowed("s1", 1, burst=1) and allowed("s1", 1, burst=1)
