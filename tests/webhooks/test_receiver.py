"""POST /webhooks/waha: signature, body checks, durable write, queueing, and what happens without Redis."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from rq import Queue
from sqlalchemy import func, select

from portal.extensions import db, redis_store
from portal.models import Message, WahaSession, WebhookEvent
from portal.queue import JOB_DRAIN_EVENTS, QUEUE_EVENTS, RQRunner
from portal.services import events
from tests.builders import body_of, envelope, inbound_payload, new_session, post_events, sign
from tests.helpers import unreachable_redis, wait_for


@pytest.fixture
def session(tenant: Any) -> Any:
    return new_session(tenant, "Support")


def _rows(**filters: Any) -> list[WebhookEvent]:
    """This test's events (ids from the helpers), not a late delivery meant for an earlier test's session."""
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(WebhookEvent)
            .filter_by(**filters)
            .where(WebhookEvent.event_id.like("evt_test%"))
            .order_by(WebhookEvent.id)
        )
    )


def _queued_jobs() -> list[str]:
    return [job.func_name for job in Queue(QUEUE_EVENTS, connection=redis_store.client).jobs]


@pytest.mark.smoke
def test_signed_event_is_stored_pending_and_processing_queued(client, session):
    body = envelope(session, "message", inbound_payload("hi"))
    response = post_events(client, session, body)
    assert response.status_code == 200
    assert response.get_json() == {"received": 1, "stored": 1, "ignored": False, "stale": 0}
    assert (response.content_type, response.content_length) == ("application/json", len(response.data))
    assert len(response.headers["X-Request-ID"]) == 32 and response.headers["X-Content-Type-Options"] == "nosniff"
    [row] = _rows(session_id=session.id)
    assert (row.event_id, row.event, row.status, row.tenant_id) == (body["id"], "message", "pending", session.tenant_id)
    assert row.payload == body
    assert _queued_jobs() == [JOB_DRAIN_EVENTS]


def test_many_requests_queue_one_drain_job_while_it_waits(client, session):
    for n in range(5):
        assert post_events(client, session, envelope(session, "message", inbound_payload(f"m{n}"))).status_code == 200
    assert _queued_jobs() == [JOB_DRAIN_EVENTS]


@pytest.mark.smoke
def test_bad_signature_is_refused_with_401_and_nothing_stored(client, session):
    body = body_of(envelope(session, "message", inbound_payload()))
    response = client.post(
        f"/webhooks/waha?session={session.id}", data=body, headers={"X-Webhook-Hmac": sign("not-the-key", body)}
    )
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "bad_signature"
    assert _rows() == []


def test_missing_signature_is_refused_with_401(client, session):
    response = client.post(
        f"/webhooks/waha?session={session.id}", data=body_of(envelope(session, "message", inbound_payload()))
    )
    assert response.status_code == 401


def test_key_of_one_session_does_not_open_another(client, tenant, session):
    other = new_session(tenant, "Other")
    response = post_events(client, other, envelope(other, "message", inbound_payload()), key=session.hmac_key)
    assert response.status_code == 401


def test_signature_over_reserialized_json_is_refused(client, session):
    """The HMAC covers the exact bytes WAHA sent; the same JSON with other whitespace is another body."""
    event = envelope(session, "message", inbound_payload())
    signed = body_of(event)
    sent = body_of(event).replace(b",", b", ")
    response = client.post(
        f"/webhooks/waha?session={session.id}", data=sent, headers={"X-Webhook-Hmac": sign(session.hmac_key, signed)}
    )
    assert response.status_code == 401


def test_invalid_json_is_refused_with_400(client, session):
    response = post_events(client, session, b'{"event": "message", ')
    assert response.status_code == 400
    assert _rows() == []


def test_event_without_name_is_refused_with_400(client, session):
    response = post_events(client, session, {"id": "evt_x", "payload": {}})
    assert response.status_code == 400


def test_event_over_one_megabyte_is_refused_with_413(client, session):
    response = post_events(client, session, envelope(session, "message", inbound_payload("x" * (1024 * 1024))))
    assert response.status_code == 413
    assert _rows() == []


def test_batch_over_ten_megabytes_is_refused_with_413(client, session):
    batch = [envelope(session, "message", inbound_payload("x" * (600 * 1024))) for _ in range(18)]
    response = post_events(client, session, batch)
    assert response.status_code == 413


def test_batch_of_more_than_a_thousand_events_is_refused_with_400_and_nothing_stored(client, session):
    batch = [envelope(session, "message", inbound_payload(f"n {n}")) for n in range(1001)]
    response = post_events(client, session, batch)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "batch_too_large"
    assert _rows() == []


@pytest.mark.parametrize("param", ["00000000-0000-0000-0000-000000000000", "unknown", ""])
def test_unknown_or_missing_session_is_refused_with_404_and_nothing_stored(client, session, param):
    batch = [envelope(session, "message", inbound_payload(f"spam {n}")) for n in range(1000)]
    response = client.post(f"/webhooks/waha?session={param}", data=body_of(batch))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "session_not_found"
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
    assert _queued_jobs() == []


def test_events_for_a_session_deleted_after_its_key_was_cached_are_refused_with_404(client, tenant, session):
    assert post_events(client, session, envelope(session, "message", inbound_payload("first"))).status_code == 200
    key, session_id = session.hmac_key, session.id
    db.session.execute(sa.delete(WebhookEvent))
    db.session.execute(sa.delete(WahaSession).where(WahaSession.id == session_id))  # key still cached
    db.session.commit()
    body = body_of(envelope(session, "message", inbound_payload("late")))
    response = client.post(
        f"/webhooks/waha?session={session_id}", data=body, headers={"X-Webhook-Hmac": sign(key, body)}
    )
    assert response.status_code == 404
    assert _rows() == []


@pytest.mark.smoke
def test_same_event_twice_is_stored_once(client, session):
    body = envelope(session, "message", inbound_payload())
    assert post_events(client, session, body).status_code == 200
    assert post_events(client, session, body).status_code == 200
    assert len(_rows()) == 1


@pytest.mark.smoke
def test_batch_of_100_events_is_stored_in_one_request_and_processed(client, session, run_jobs):
    batch = [envelope(session, "message", inbound_payload(f"message {n}")) for n in range(100)]
    response = post_events(client, session, batch)
    assert response.status_code == 200
    assert response.get_json()["stored"] == 100
    run_jobs()
    assert {r.status for r in _rows()} == {"done"}
    assert db.session.scalar(select(func.count()).select_from(Message)) == 100


def test_redis_down_at_ingest_answers_200_and_sweeper_gets_event_processed(app, client, session, run_jobs, monkeypatch):
    dead = unreachable_redis()
    monkeypatch.setattr(redis_store, "_client", dead)
    monkeypatch.setitem(app.extensions, "portal_jobs", RQRunner(dead))
    payload = inbound_payload("sent while Redis was down")
    response = post_events(client, session, envelope(session, "message", payload))
    assert response.status_code == 200
    monkeypatch.undo()

    assert [r.status for r in _rows()] == ["pending"]
    assert _queued_jobs() == []  # nothing could be queued
    assert events.sweep(older_than=0) == 1
    run_jobs()
    assert [r.status for r in _rows()] == ["done"]
    assert db.session.scalar(select(Message.body).where(Message.waha_message_id == payload["id"])) == payload["body"]


def test_busy_receiver_coalesces_drain_signals_without_losing_any(app, client, session, run_jobs, monkeypatch):
    from portal.services.events import signal as drain_signal

    monkeypatch.setitem(app.config, "EVENTS_SIGNAL_COALESCE_SECONDS", 2.0)
    # a quiet spell before the first event: the test before this one in the process may have signalled just now
    monkeypatch.setattr(drain_signal._signal, "last", 0.0)
    # the window this test widens stays with the process-wide signal: give the next test the one it found
    monkeypatch.setattr(drain_signal._signal, "window", drain_signal._signal.window)
    first = inbound_payload("first")
    post_events(client, session, envelope(session, "message", first))
    assert _queued_jobs() == [JOB_DRAIN_EVENTS]
    run_jobs()
    second = inbound_payload("second, within the window")
    post_events(client, session, envelope(session, "message", second))
    assert _queued_jobs() == []  # no Redis round trip for this request...
    wait_for(lambda: _queued_jobs() == [JOB_DRAIN_EVENTS], timeout=6)  # ...the window's end signals for it
    run_jobs()
    assert {r.status for r in _rows()} == {"done"}


def _metric(text: str, outcome: str) -> float:
    import re

    match = re.search(rf'^portal_webhook_events_total{{outcome="{outcome}"}} ([0-9.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_receiver_and_processing_are_counted_in_the_shared_metrics(app, client, session, run_jobs):
    from portal import metrics

    body = envelope(session, "message", inbound_payload())
    post_events(client, session, body)
    post_events(client, session, body)
    client.post("/webhooks/waha?session=00000000-0000-0000-0000-000000000000", data=body_of(body))
    run_jobs()
    with app.app_context():
        wait_for(lambda: _metric(metrics.render().decode(), "unknown_session") == 1)
        wait_for(lambda: _metric(metrics.render().decode(), "processed") == 1)
        text = metrics.render().decode()
    assert [_metric(text, o) for o in ("received", "duplicate", "ignored", "processed")] == [2, 1, 0, 1]
