"""Plans and quotas: exact counters under races (Redis and PostgreSQL), reconcile after a Redis loss, warnings
once per level, a limit lowered below what is used."""

from __future__ import annotations

import threading
import time
from typing import Any

import fakeredis
import pytest
from flask import Flask
from sqlalchemy import func, select

from portal.extensions import db, redis_store
from portal.mail import outbox
from portal.models import AuditEvent, QuotaUsage, QuotaWarning, Tenant, WebhookEndpoint, utcnow
from portal.services import forwarding, quotas
from portal.services.errors import RateLimited
from portal.services.quotas import counters
from portal.waha.breaker import RedisBreakerStore
from tests.builders import TEST_ACTOR, make_tenant, make_user
from tests.helpers import unreachable_redis


def _race(app: Flask, count: int, work: Any) -> list[Any]:
    """Run `work()` in `count` threads at once (each in its own app context); their results or exceptions."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                results[i] = work()
            except Exception as exc:  # the refusal is the result
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def _override(tenant: Tenant, **limits: int | None) -> None:
    for column, value in limits.items():
        setattr(tenant, column, value)
    db.session.commit()


def test_new_tenants_get_the_default_plan(tenant: Any) -> None:
    plan = quotas.default_plan()
    assert tenant.plan_id == plan.id
    assert quotas.limit_of(tenant, "sessions") == 10  # the default plan keeps the old default
    assert quotas.limit_of(tenant, "messages_per_day") is None


def test_override_wins_over_the_plan(tenant: Any) -> None:
    quotas.save_plan(tenant.plan_id, "Default", {"max_messages_per_day": 100}, TEST_ACTOR)
    assert quotas.limit_of(tenant, "messages_per_day") == 100
    _override(tenant, max_messages_per_day=5)
    assert quotas.limit_of(tenant, "messages_per_day") == 5


def test_twenty_racing_takes_get_exactly_the_last_five_units(app: Flask, tenant: Any) -> None:
    tenant_id = tenant.id
    for _ in range(5):
        assert counters.take("msg", tenant_id, 1, None, 10, "s1").taken is not None
    results = _race(app, 20, lambda: counters.take("msg", tenant_id, 1, None, 10, "s1"))
    assert sum(1 for r in results if r.taken is not None) == 5
    assert all(r.refused_by == "month" for r in results if r.taken is None)
    assert counters.current("msg", tenant_id, utcnow().date())[:2] == (10, 10)


def test_racing_endpoint_creations_get_exactly_the_free_slots(app: Flask, tenant: Any) -> None:
    _override(tenant, max_webhook_endpoints=3)
    forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/one", events=["*"])
    tenant_id = tenant.id

    def create() -> Any:
        return forwarding.create_endpoint(db.session.get(Tenant, tenant_id), TEST_ACTOR, url="http://127.0.0.1:9/x")

    results = _race(app, 8, create)
    refused = [r for r in results if isinstance(r, quotas.QuotaExceeded)]
    assert len(refused) == 6
    assert db.session.scalar(select(func.count(WebhookEndpoint.id)).where(WebhookEndpoint.tenant_id == tenant_id)) == 3
    assert refused[0].details == {"quota": "webhook_endpoints", "limit": 3, "used": 3, "resetsAt": None}


def test_counts_survive_a_redis_flush_through_the_usage_table(tenant: Any) -> None:
    for _ in range(3):
        quotas.take_message(tenant, "s1")
    assert quotas.flush() == 1
    row = db.session.scalar(select(QuotaUsage).where(QuotaUsage.tenant_id == tenant.id, QuotaUsage.session_id == ""))
    assert row is not None and row.messages == 3
    redis_store.client.flushdb()
    quotas.take_message(tenant, "s1")  # seeds from the table, then counts on
    day, month, sessions = counters.current("msg", tenant.id, utcnow().date())
    assert (day, month, sessions) == (4, 4, {"s1": 4})


def _counted(tenant: Any) -> tuple[int, int, dict[str, int]]:
    return counters.current("msg", tenant.id, utcnow().date())


def test_a_paced_take_refused_by_the_sessions_pace_takes_no_unit(tenant: Any) -> None:
    _override(tenant, send_rate_per_minute=2)  # a slot every 30 s, no burst
    assert quotas.take_send(tenant, "s1", paced=True).taken is not None

    with pytest.raises(RateLimited) as refused:
        quotas.take_send(tenant, "s1", paced=True)

    assert 29 <= refused.value.retry_after <= 30
    assert refused.value.details == {"rate_per_minute": 2, "burst": 1}
    assert _counted(tenant) == (1, 1, {"s1": 1})
    assert quotas.take_send(tenant, "s2", paced=True).taken is not None  # another session keeps its own pace


def test_a_paced_take_refused_by_the_quota_keeps_the_count(tenant: Any) -> None:
    _override(tenant, send_rate_per_minute=600, max_messages_per_day=1)
    quotas.take_send(tenant, "s1", paced=True)

    with pytest.raises(quotas.QuotaExceeded) as refused:
        quotas.take_send(tenant, "s1", paced=True)

    assert refused.value.details["quota"] == "messages_per_day"
    assert _counted(tenant) == (1, 1, {"s1": 1})


def test_a_paced_take_that_seeds_the_counts_spends_one_slot(tenant: Any) -> None:
    _override(tenant, send_rate_per_minute=2)
    quotas.take_message(tenant, "s0")
    quotas.flush()
    redis_store.client.delete(*[key for key in counters.keys("msg", tenant.id, utcnow().date(), True) if key])

    assert quotas.take_send(tenant, "s1", paced=True).taken is not None  # seeds from the table, then counts on

    assert _counted(tenant) == (2, 2, {"s0": 1, "s1": 1})
    with pytest.raises(RateLimited) as refused:
        quotas.take_send(tenant, "s1", paced=True)
    assert 29 <= refused.value.retry_after <= 30  # one slot taken, not two (that would be ~60 s)


def test_a_tenant_that_may_not_send_is_refused_before_anything_is_counted(tenant: Any) -> None:
    _override(tenant, send_rate_per_minute=0)

    with pytest.raises(RateLimited):
        quotas.take_send(tenant, "s1", paced=True)

    assert _counted(tenant) == (0, 0, {})


def test_a_paced_take_on_the_embedded_in_memory_redis(tenant: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_store, "_client", fakeredis.FakeRedis())
    _override(tenant, send_rate_per_minute=60)  # a burst of 6

    results = []
    for _ in range(7):
        try:
            results.append(quotas.take_send(tenant, "s1", paced=True).taken is not None)
        except RateLimited:
            results.append(False)

    assert results == [True] * 6 + [False]
    assert _counted(tenant) == (6, 6, {"s1": 6})


def test_a_paced_take_lets_the_send_through_when_redis_is_down(tenant: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _override(tenant, send_rate_per_minute=1, max_messages_per_day=1)
    monkeypatch.setattr(redis_store, "_client", unreachable_redis())

    assert quotas.take_send(tenant, "s1", paced=True).taken is None  # not counted, not paced, not refused
    assert quotas.take_send(tenant, "s1", paced=True).taken is None


def test_a_unit_given_back_is_free_again(tenant: Any) -> None:
    _override(tenant, max_messages_per_day=1)
    taken = quotas.take_message(tenant, "s1")
    quotas.give_back(taken)
    assert quotas.take_message(tenant, "s1") is not None


def test_a_limit_set_below_usage_stops_new_use_and_deletes_nothing(tenant: Any) -> None:
    for _ in range(3):
        quotas.take_message(tenant, "s1")
    _override(tenant, max_messages_per_month=2)
    try:
        quotas.take_message(tenant, "s1")
        raise AssertionError("taken over the quota")
    except quotas.QuotaExceeded as exc:
        assert exc.details["quota"] == "messages_per_month"
        assert exc.details["used"] == 3
        assert exc.details["resetsAt"].startswith(f"{utcnow().year + utcnow().month // 12:04d}-")
    assert counters.current("msg", tenant.id, utcnow().date())[1] == 3


def test_owners_are_warned_once_per_level(tenant: Any) -> None:
    make_user(tenant, "owner", email="boss@acme.example.com")
    make_user(tenant, "operator", email="op@acme.example.com")
    _override(tenant, max_messages_per_day=10)
    for _ in range(8):
        quotas.take_message(tenant, "s1")
    quotas.flush()
    assert [(w.quota, w.level) for w in db.session.scalars(select(QuotaWarning))] == [("messages_per_day", 80)]
    assert [m.to for m in outbox] == ["boss@acme.example.com"]
    quotas.take_message(tenant, "s1")
    quotas.flush()
    assert len(outbox) == 1  # 90 %: nothing new
    quotas.take_message(tenant, "s1")
    quotas.flush()
    quotas.check_warnings(tenant.id)
    levels = sorted(w.level for w in db.session.scalars(select(QuotaWarning)))
    assert levels == [80, 100]
    assert len(outbox) == 2
    audited = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "quota.warning")).all()
    assert len(audited) == 2


def test_warnings_reach_the_webhook_endpoints_as_tenant_quota(tenant: Any) -> None:
    forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/hook", events=["tenant.quota"])
    _override(tenant, max_messages_per_day=1)
    quotas.take_message(tenant, "s1")
    quotas.flush()
    from portal.models import WebhookDelivery

    deliveries = db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_type == "tenant.quota")).all()
    assert sorted(d.payload["payload"]["level"] for d in deliveries) == [80, 100]


def test_another_tenants_use_is_not_counted(tenant: Any) -> None:
    other = make_tenant("globex")
    _override(tenant, max_messages_per_day=1)
    quotas.take_message(other, "s9")
    assert quotas.take_message(tenant, "s1") is not None
    usage = quotas.tenant_usage(tenant)
    assert {line.quota: line.used for line in usage.lines}["messages_per_day"] == 1


def test_a_send_refused_by_the_quota_holds_no_trial_of_a_half_open_breaker(tenant: Any) -> None:
    _override(tenant, send_rate_per_minute=600, max_messages_per_day=1)
    store = RedisBreakerStore(redis_store.client)
    name = "http://waha.example:3000"
    store.record(name, True, 1, 0.05)  # the circuit opens for 50 ms
    time.sleep(0.1)  # and is half-open now: the next call asked is the trial
    gate = (store.key(name), 0.05)
    quotas.take_message(tenant, "s1")

    with pytest.raises(quotas.QuotaExceeded):
        quotas.take_send(tenant, "s1", paced=True, breaker=gate)

    assert not redis_store.client.hexists(store.key(name), "t")  # the trial is still there for a send that passes
    _override(tenant, max_messages_per_day=2)
    passed = quotas.take_send(tenant, "s2", paced=True, breaker=gate)
    assert passed.taken is not None and passed.verdict == (True, 0.0, True)  # this send is the trial
    assert redis_store.client.hexists(store.key(name), "t")
