"""Tenant webhook endpoints and the delivery ledger, without sending (sending is in tests/jobs)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, WebhookDelivery, WebhookEndpoint, utcnow
from portal.services import forwarding
from portal.services.errors import Invalid, NotFound
from tests.builders import TEST_ACTOR, make_tenant


@pytest.fixture
def public_only(app: Any) -> Any:
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    yield
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True


def test_created_endpoint_shows_its_secret_once_and_stores_it_encrypted(tenant):
    endpoint, secret = forwarding.create_endpoint(
        tenant, TEST_ACTOR, url="http://127.0.0.1:9/hook", events=["message"], description="CRM"
    )
    assert secret.startswith("whsec_") and len(secret) > 30
    raw = db.session.execute(
        sa.text("SELECT secret FROM webhook_endpoints WHERE id = :id"), {"id": endpoint.id}
    ).scalar()
    assert secret not in raw and secret[6:] not in raw
    assert (endpoint.events, endpoint.description, endpoint.is_enabled) == (["message"], "CRM", True)
    assert db.session.scalar(
        select(AuditEvent.details).where(
            AuditEvent.action == "webhook.create", AuditEvent.target_id == str(endpoint.id)
        )
    ) == {"url": "http://127.0.0.1:9/hook", "events": ["message"]}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/x",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://0.0.0.0/",
    ],
)
def test_endpoint_on_a_private_address_is_refused(tenant, public_only, url):
    with pytest.raises(Invalid) as error:
        forwarding.create_endpoint(tenant, TEST_ACTOR, url=url, events=["*"])
    assert error.value.details["fields"][0]["field"] == "url"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "http://user:pw@example.com/", ""])
def test_endpoint_url_must_be_plain_http(tenant, url):
    with pytest.raises(Invalid):
        forwarding.create_endpoint(tenant, TEST_ACTOR, url=url)


def test_endpoint_with_unknown_event_names_is_refused(tenant):
    with pytest.raises(Invalid) as error:
        forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/", events=["message", "nope"])
    assert "nope" in error.value.message


def test_another_tenants_endpoint_is_not_found(tenant):
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/")
    other = make_tenant("other")
    for call in (
        lambda: forwarding.get_endpoint(other, endpoint.id),
        lambda: forwarding.update_endpoint(other, endpoint.id, TEST_ACTOR, description="x"),
        lambda: forwarding.delete_endpoint(other, endpoint.id, TEST_ACTOR),
        lambda: forwarding.send_test_event(other, endpoint.id, TEST_ACTOR),
    ):
        with pytest.raises(NotFound) as error:
            call()
        assert error.value.code == "endpoint_not_found"


def test_update_changes_only_the_given_fields(tenant):
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/", events=["message"])
    forwarding.update_endpoint(tenant, endpoint.id, TEST_ACTOR, is_enabled=False, events=["session.attention"])
    db.session.expire_all()
    row = db.session.get(WebhookEndpoint, endpoint.id)
    assert (row.is_enabled, row.events, row.url) == (False, ["session.attention"], "http://127.0.0.1:9/")


def test_rotated_secret_replaces_the_old_one(tenant):
    endpoint, first = forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/")
    _, second = forwarding.rotate_secret(tenant, endpoint.id, TEST_ACTOR)
    db.session.expire_all()
    assert second != first and db.session.get(WebhookEndpoint, endpoint.id).secret == second


def _delivery(tenant: Any, endpoint: WebhookEndpoint, n: int, status: str = "succeeded") -> WebhookDelivery:
    row = WebhookDelivery(
        tenant_id=tenant.id,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        msg_id=f"evt_{n}",
        event_type="message",
        payload={"n": n},
        attempt=1,
        status=status,
    )
    db.session.add(row)
    return row


def test_deliveries_page_newest_first_with_a_cursor_and_filters(tenant):
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/")
    for n in range(7):
        _delivery(tenant, endpoint, n, "dead" if n % 3 == 0 else "succeeded")
    db.session.commit()
    first = forwarding.list_deliveries(tenant, limit=3)
    second = forwarding.list_deliveries(tenant, limit=3, cursor=first.next_cursor)
    third = forwarding.list_deliveries(tenant, limit=3, cursor=second.next_cursor)
    seen = [d.payload["n"] for page in (first, second, third) for d in page.items]
    assert seen == [6, 5, 4, 3, 2, 1, 0] and third.next_cursor is None
    dead = forwarding.list_deliveries(tenant, status="dead", endpoint_id=endpoint.id)
    assert [d.payload["n"] for d in dead.items] == [6, 3, 0]
    assert forwarding.list_deliveries(make_tenant("other")).items == []


def test_deliveries_refuse_a_forged_cursor(tenant):
    with pytest.raises(Invalid):
        forwarding.list_deliveries(tenant, cursor="bm90LWEtY3Vyc29y")


def test_replay_adds_an_attempt_with_the_same_message_id(tenant):
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/")
    original = _delivery(tenant, endpoint, 1, "dead")
    db.session.commit()
    replay = forwarding.replay_delivery(tenant, original.id, TEST_ACTOR)
    assert (replay.msg_id, replay.attempt, replay.status, replay.payload) == ("evt_1", 2, "pending", {"n": 1})
    with pytest.raises(NotFound):
        forwarding.replay_delivery(make_tenant("other"), original.id, TEST_ACTOR)


def test_backoff_doubles_each_attempt_with_at_most_a_fifth_of_jitter(ctx):
    for attempt in range(1, 6):
        delay = forwarding.backoff_seconds(attempt)
        base = forwarding.RETRY_BASE_SECONDS * 2 ** (attempt - 1)
        assert base <= delay <= base * 1.2


def _queued_drains() -> int:
    from rq import Queue

    from portal.extensions import redis_store

    return sum(1 for job in Queue("forwarding", connection=redis_store.client).jobs if "drain" in job.func_name)


def test_dispatch_asks_for_one_drain_while_attempts_are_due(tenant):
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/")
    due = _delivery(tenant, endpoint, 1, "pending")
    due.due_at = utcnow() - timedelta(seconds=1)
    later = _delivery(tenant, endpoint, 2, "pending")
    later.due_at = utcnow() + timedelta(minutes=5)
    db.session.commit()
    assert forwarding.dispatch_due() == 1
    assert forwarding.dispatch_due() == 1  # still due, but the drain that waits in the queue will take it
    assert _queued_drains() == 1


def test_dispatch_leaves_attempts_a_batch_holds_until_their_lease_ends(tenant):
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/")
    held = _delivery(tenant, endpoint, 1, "pending")
    held.due_at = utcnow() - timedelta(seconds=1)
    held.leased_until = utcnow() + timedelta(minutes=2)
    db.session.commit()
    assert forwarding.dispatch_due() == 0
    held.leased_until = utcnow() - timedelta(seconds=1)  # the worker that claimed it died; its lease ran out
    db.session.commit()
    assert forwarding.dispatch_due() == 1


def test_every_event_an_endpoint_is_offered_is_accepted(tenant):
    offered = [name for name, _ in forwarding.ENDPOINT_EVENTS]
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/hook", events=offered)
    assert endpoint.events == offered


def test_events_an_endpoint_has_beyond_the_usual_list_stay_on_offer():
    choices = forwarding.endpoint_event_choices(["message", "poll.vote"])
    assert choices[: len(forwarding.ENDPOINT_EVENTS)] == list(forwarding.ENDPOINT_EVENTS)
    assert choices[len(forwarding.ENDPOINT_EVENTS) :] == [("poll.vote", "poll.vote")]


def _attempt(tenant: Any, n: int, created: Any) -> WebhookDelivery:
    row = WebhookDelivery(
        tenant_id=tenant.id,
        url="https://hooks.example.com/in",
        msg_id=f"msg_{n}",
        event_type="message",
        payload={},
        status="succeeded",
        created_at=created,
    )
    db.session.add(row)
    db.session.flush()
    return row


def test_delivery_pages_follow_the_time_of_the_attempts_each_once(tenant):
    base = utcnow() - timedelta(hours=1)
    rows = [_attempt(tenant, n, base + timedelta(seconds=n)) for n in range(7)]
    rows.append(_attempt(tenant, 99, base + timedelta(seconds=2.5)))  # a later id with an earlier time
    _attempt(make_tenant(), 100, base + timedelta(seconds=3))  # another tenant's, never listed
    db.session.commit()
    seen, cursor, pages = [], None, 0
    while True:
        page = forwarding.list_deliveries(tenant, cursor=cursor, limit=3)
        seen += [d.msg_id for d in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = [r.msg_id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]
    assert seen == expected and pages == 3
