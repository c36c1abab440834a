"""The receiver and awkward but signed input: NUL characters, lone surrogates, stale or replayed timestamps,
copies of one event arriving together."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Message, WebhookEvent
from portal.services import events
from tests.builders import body_of, envelope, inbound_payload, new_session, post_events


@pytest.fixture
def session(tenant: Any) -> Any:
    return new_session(tenant, "Support")


def _event(event_id: str) -> WebhookEvent | None:
    db.session.expire_all()
    return db.session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == event_id))


def _body(waha_id: str) -> str | None:
    db.session.expire_all()
    return db.session.scalar(select(Message.body).where(Message.waha_message_id == waha_id))


@pytest.mark.parametrize(
    "text, stored", [("bad\u0000byte", "badbyte"), ("\u0000", ""), ("half \ud83d pair", "half \ufffd pair")]
)
def test_signed_message_with_nul_or_lone_surrogate_is_stored_and_applied(client, session, run_jobs, text, stored):
    payload = inbound_payload(text)
    event = envelope(session, "message", payload)
    raw = body_of(event)
    assert b"\\u" in raw  # json.dumps escapes both, as WAHA's JSON.stringify does
    response = post_events(client, session, raw)
    assert response.status_code == 200 and response.get_json()["stored"] == 1
    row = _event(event["id"])
    assert row.payload["payload"]["body"] == stored
    assert row.raw == raw.decode()  # the body exactly as received
    run_jobs()
    assert _event(event["id"]).status == "done"
    assert _body(payload["id"]) == stored


def test_nul_anywhere_in_a_batch_payload_is_cleaned_and_every_event_stored(client, session, run_jobs):
    dirty = envelope(session, "message", inbound_payload("clean body"))
    dirty["payload"]["weird\u0000key"] = ["a\u0000", {"b": "\u0000c"}]
    dirty["metadata"]["note"] = "x\u0000y"
    clean = envelope(session, "message", inbound_payload("fine"))
    response = post_events(client, session, [dirty, clean])
    assert response.status_code == 200 and response.get_json()["stored"] == 2
    row = _event(dirty["id"])
    assert row.payload["payload"]["weirdkey"] == ["a", {"b": "c"}]
    assert row.payload["metadata"]["note"] == "xy"
    assert json.loads(row.raw) == dirty
    assert _event(clean["id"]).raw is None
    run_jobs()
    assert {_event(dirty["id"]).status, _event(clean["id"]).status} == {"done"}


def test_text_that_only_looks_like_an_escape_is_kept_as_sent(client, session):
    event = envelope(session, "message", inbound_payload("a literal \\u0000 and \\ud800"))
    assert post_events(client, session, event).status_code == 200
    row = _event(event["id"])
    assert row.payload == event and row.raw is None


def test_deeply_nested_json_is_refused_with_400(client, session):
    body = b'{"event":"message","payload":' + b"[" * 100000 + b"]" * 100000 + b"}"
    response = post_events(client, session, body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_json"


# ---- replay window


def _ms(offset_seconds: float) -> int:
    return int((time.time() + offset_seconds) * 1000)


@pytest.mark.parametrize("offset", [-2 * 3600, -3601, 3600])
def test_event_with_a_signed_timestamp_outside_the_window_is_not_stored(client, session, offset):
    event = envelope(session, "message", inbound_payload(), timestamp=_ms(offset))
    response = post_events(client, session, event)
    assert response.status_code == 200
    assert response.get_json()["stale"] == 1 and response.get_json()["stored"] == 0
    assert _event(event["id"]) is None


@pytest.mark.parametrize("offset", [-3500, -60, 0, 240])
def test_event_inside_the_window_is_stored(client, session, offset):
    event = envelope(session, "message", inbound_payload(), timestamp=_ms(offset))
    assert post_events(client, session, event).get_json()["stored"] == 1
    assert _event(event["id"]) is not None


def test_stale_events_of_a_batch_are_left_out_and_the_rest_stored(client, session):
    old = envelope(session, "message", inbound_payload(), timestamp=_ms(-7200))
    new = envelope(session, "message", inbound_payload())
    answer = post_events(client, session, [old, new]).get_json()
    assert (answer["stored"], answer["stale"]) == (1, 1)
    assert _event(old["id"]) is None and _event(new["id"]).payload == new


def test_window_is_configurable_and_zero_turns_it_off(app, client, session, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_REPLAY_WINDOW", 0)
    event = envelope(session, "message", inbound_payload(), timestamp=_ms(-30 * 86400))
    assert post_events(client, session, event).get_json()["stored"] == 1


def test_unsigned_timestamp_header_does_not_decide(client, session):
    event = envelope(session, "message", inbound_payload(), timestamp=_ms(-7200))
    body = body_of(event)
    from tests.builders import sign

    response = client.post(
        f"/webhooks/waha?session={session.id}",
        data=body,
        headers={"X-Webhook-Hmac": sign(session.hmac_key, body), "X-Webhook-Timestamp": str(_ms(0))},
    )
    assert response.get_json()["stored"] == 0


# ---- exact counts under group commit


def test_copies_of_one_event_in_one_group_commit_count_as_stored_once(ctx, session):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("group commit is the PostgreSQL receiver")
    event = envelope(session, "message", inbound_payload())
    raw = body_of(event).decode()
    row = (event["id"], session.tenant_id, session.id, None, "message", raw, None, "pending")
    first, second = events._Pending([row]), events._Pending([row])
    events._GroupWriter()._flush([first, second])
    assert (len(first.inserted), len(second.inserted)) == (1, 0)


def test_concurrent_copies_of_one_event_report_one_stored(app, session):
    event = envelope(session, "message", inbound_payload())
    body = body_of(event)
    answers: list[int] = []
    start = threading.Barrier(24)

    def send() -> None:
        client = app.test_client()
        start.wait()
        answers.append(post_events(client, session, body).get_json()["stored"])

    threads = [threading.Thread(target=send) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 24 and sum(answers) == 1
