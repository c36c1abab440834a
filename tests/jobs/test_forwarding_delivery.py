"""Forwarding to tenants through a real RQ worker: signatures, retries with a row per attempt, dead letters,
replay, the session's own webhook URL, and refusal of private destinations."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from portal.extensions import db
from portal.models import WebhookDelivery
from portal.services import forwarding
from tests.builders import TEST_ACTOR, envelope, inbound_payload, new_session, post_events


@pytest.fixture
def fast_retries(app: Any) -> Any:
    """Back-off of a few milliseconds, so a retry is due as soon as the test dispatches it."""
    previous = app.config.get("WEBHOOK_RETRY_BASE_SECONDS")
    app.config["WEBHOOK_RETRY_BASE_SECONDS"] = 0.001
    yield
    if previous is None:
        app.config.pop("WEBHOOK_RETRY_BASE_SECONDS")
    else:
        app.config["WEBHOOK_RETRY_BASE_SECONDS"] = previous


def _attempts(endpoint_id: int | None = None) -> list[WebhookDelivery]:
    db.session.expire_all()
    stmt = select(WebhookDelivery).order_by(WebhookDelivery.id)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    return list(db.session.scalars(stmt))


def _retry_until_settled(run_jobs: Any, rounds: int = 6) -> None:
    """What the worker and the scheduled dispatcher do over time: send, then queue the due retries, again."""
    for _ in range(rounds):
        run_jobs()
        if not forwarding.dispatch_due():
            break


def test_endpoint_failing_twice_then_succeeding_has_three_signed_attempts(
    client, tenant, receiver, run_jobs, fast_retries
):
    endpoint, secret = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["message"])
    session = new_session(tenant, "Support")
    receiver.statuses = [500, 503]
    payload = inbound_payload("forward me")
    post_events(client, session, envelope(session, "message", payload))
    _retry_until_settled(run_jobs)

    attempts = _attempts(endpoint.id)
    assert [(a.attempt, a.status, a.response_status) for a in attempts] == [
        (1, "failed", 500),
        (2, "failed", 503),
        (3, "succeeded", 200),
    ]
    assert len({a.msg_id for a in attempts}) == 1
    assert len(receiver.requests) == 3
    verifier = Webhook(secret)
    for request in receiver.requests:
        body = verifier.verify(request["body"], request["headers"])
        assert body["type"] == "message" and body["payload"]["id"] == payload["id"]
        assert body["session"] == {"id": session.id, "name": "Support"}
    assert {r["headers"]["Webhook-Id"] for r in receiver.requests} == {attempts[0].msg_id}


def test_delivery_failing_every_attempt_ends_dead(client, tenant, receiver, run_jobs, fast_retries, app):
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["*"])
    session = new_session(tenant, "Support")
    receiver.statuses = [500] * 10
    post_events(client, session, envelope(session, "message", inbound_payload()))
    _retry_until_settled(run_jobs)
    attempts = _attempts(endpoint.id)
    retries = app.config["WAHA_WEBHOOK_RETRY_ATTEMPTS"]
    assert [a.status for a in attempts] == ["failed"] * retries + ["dead"]


def test_replay_sends_a_dead_delivery_again_as_a_new_attempt(client, tenant, receiver, run_jobs, fast_retries):
    endpoint, secret = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["message"])
    session = new_session(tenant, "Support")
    receiver.statuses = [500] * 3
    post_events(client, session, envelope(session, "message", inbound_payload()))
    _retry_until_settled(run_jobs)
    dead = _attempts(endpoint.id)[-1]
    assert dead.status == "dead"

    replay = forwarding.replay_delivery(tenant, dead.id, TEST_ACTOR)
    run_jobs()
    attempts = _attempts(endpoint.id)
    assert (attempts[-1].id, attempts[-1].attempt, attempts[-1].status) == (replay.id, dead.attempt + 1, "succeeded")
    assert attempts[-1].msg_id == dead.msg_id
    Webhook(secret).verify(receiver.requests[-1]["body"], receiver.requests[-1]["headers"])


def test_endpoint_gets_only_the_events_it_subscribed_to(client, tenant, receiver, run_jobs):
    forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["session.status"])
    session = new_session(tenant, "Support")
    post_events(
        client,
        session,
        [
            envelope(session, "message", inbound_payload()),
            envelope(session, "session.status", {"name": "x", "status": "WORKING"}),
        ],
    )
    run_jobs()
    assert [a.event_type for a in _attempts()] == ["session.status"]


def test_session_webhook_url_receives_its_events_signed_with_the_session_secret(client, tenant, receiver, run_jobs):
    session = new_session(tenant, "Own hook", webhook_url=receiver.url, webhook_events=["message"])
    post_events(
        client,
        session,
        [
            envelope(session, "message", inbound_payload("to the session hook")),
            envelope(session, "presence.update", {"id": "x", "presences": []}),
        ],
    )
    run_jobs()
    [attempt] = _attempts()
    assert (attempt.endpoint_id, attempt.session_id, attempt.status) == (None, session.id, "succeeded")
    [request] = receiver.requests
    body = Webhook(forwarding.session_webhook_secret(session)).verify(request["body"], request["headers"])
    assert body["payload"]["body"] == "to the session hook"


def test_private_destination_is_refused_at_send_time(app, client, tenant, receiver, run_jobs):
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["message"])
    session = new_session(tenant, "Support")
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    try:
        post_events(client, session, envelope(session, "message", inbound_payload()))
        run_jobs()
    finally:
        app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    [attempt] = _attempts(endpoint.id)
    assert attempt.status == "dead" and "non-public address" in attempt.error
    assert receiver.requests == []


def test_test_event_reaches_the_endpoint(tenant, receiver, run_jobs):
    endpoint, secret = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["message"])
    forwarding.send_test_event(tenant, endpoint.id, TEST_ACTOR)
    run_jobs()
    [request] = receiver.requests
    body = Webhook(secret).verify(request["body"], request["headers"])
    assert body["type"] == "test"
    # the envelope of real events: integer milliseconds, a session slot and the payload
    assert isinstance(body["timestamp"], int) and "session" in body and body["payload"]["message"]


# ---- the connection goes to the address that was checked -------------------------------------------------------


def test_delivery_connects_to_the_address_its_check_passed_even_when_dns_changes(tenant, receiver, run_jobs, hosts):
    # create and the send-time check see 127.0.0.1 (the receiver); any later lookup says 127.0.0.2 (nothing there)
    answers = iter([["127.0.0.1"], ["127.0.0.1"]])
    hosts["hooks.test"] = lambda: next(answers, ["127.0.0.2"])
    url = receiver.url.replace("127.0.0.1", "hooks.test")
    endpoint, secret = forwarding.create_endpoint(tenant, TEST_ACTOR, url=url, events=["*"])
    forwarding.send_test_event(tenant, endpoint.id, TEST_ACTOR)
    run_jobs()
    [attempt] = _attempts(endpoint.id)
    assert attempt.status == "succeeded", attempt.error
    [request] = receiver.requests
    assert request["headers"]["Host"] == url.split("/")[2]
    Webhook(secret).verify(request["body"], request["headers"])


def test_delivery_ignores_proxy_variables_of_the_environment(tenant, receiver, run_jobs, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["*"])
    forwarding.send_test_event(tenant, endpoint.id, TEST_ACTOR)
    run_jobs()
    [attempt] = _attempts(endpoint.id)
    assert attempt.status == "succeeded", attempt.error
    assert len(receiver.requests) == 1
