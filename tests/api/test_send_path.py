"""POST /waha/sessions/:id/send over HTTP to the live portal, where every request has its own database session as
in production: the send's guarantees hold on the path that runs each statement as its own transaction."""

from __future__ import annotations

import threading
import time
from typing import Any

import requests
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Message
from portal.services import tokens
from portal.services.audit import SYSTEM
from tests.builders import make_token

TO = "+491701234567"


def _post_send(live_server: Any, token: str, session: dict[str, Any], text: str, **headers: str) -> Any:
    return requests.post(
        f"{live_server.url}/waha/sessions/{session['id']}/send",
        json={"to": TO, "text": text},
        headers={"Authorization": f"Bearer {token}", **headers},
        timeout=10,
    )


def _rows(model: Any, *where: Any) -> list[Any]:
    db.session.rollback()  # a fresh snapshot: the live portal commits on its own connections
    return list(db.session.scalars(select(model).where(*where).order_by(model.id)))


def test_send_over_http_stores_the_row_and_its_audit_event(live_server, token, working_session, sim):
    response = _post_send(live_server, token, working_session, "Hello")

    assert response.status_code == 200, response.text
    body = response.json()
    [message] = _rows(Message)
    [sent] = sim.sent_messages(working_session["externalSessionId"])
    assert (message.id, message.waha_message_id, message.body) == (body["id"], sent["id"], "Hello")
    assert message.sent_at is not None and body["sentAt"] is not None
    [event] = _rows(AuditEvent, AuditEvent.action == "message.send")
    assert (event.target_type, event.target_id, event.actor_type) == ("message", str(message.id), "token")
    assert event.details == {
        "session_id": working_session["id"],
        "message_id": message.id,
        "chat_id": "491701234567@c.us",
        "kind": "text",
    }


def test_send_over_http_commits_the_row_before_waha_is_called(live_server, token, working_session, sim):
    sim.set_latency(400)
    answer: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: answer.update(response=_post_send(live_server, token, working_session, "Hi"))
    )
    thread.start()
    seen_in_flight = []
    while thread.is_alive() and not seen_in_flight:
        seen_in_flight = [(m.status, m.sent_at) for m in _rows(Message)]
        time.sleep(0.02)
    thread.join()

    assert answer["response"].status_code == 200
    assert seen_in_flight == [("PENDING", None)]


def test_send_over_http_with_waha_down_is_503_and_the_row_and_audit_say_so(live_server, token, working_session, sim):
    sim.fail_next(5, 503)

    response = _post_send(live_server, token, working_session, "Hi")

    sim.fail_next(0)
    assert response.status_code == 503 and response.json()["error"]["code"] == "waha_unavailable"
    [message] = _rows(Message)
    assert message.status == "ERROR" and message.error and message.failed_at is not None
    actions = [
        e.action
        for e in _rows(AuditEvent, AuditEvent.target_type == "message", AuditEvent.target_id == str(message.id))
    ]
    assert actions == ["message.send", "message.send_failed"]


def test_send_over_http_racing_with_one_key_sends_once(live_server, tenant, token, working_session, sim):
    tenant.send_rate_per_minute = 6000  # room for the burst: pacing is not what this test is about
    db.session.commit()
    sim.set_latency(50)
    barrier = threading.Barrier(5)
    responses: list[Any] = []

    def send() -> None:
        barrier.wait()
        responses.append(_post_send(live_server, token, working_session, "Once", **{"Idempotency-Key": "race-1"}))

    threads = [threading.Thread(target=send) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.status_code for r in responses] == [200] * 5
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(sim.sent_messages(working_session["externalSessionId"])) == 1
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Message)) == 1


def test_send_over_http_with_a_revoked_token_is_401_and_audited(live_server, tenant, working_session, sim):
    issued = tokens.create_token(tenant, "revoked", None, SYSTEM)
    tokens.revoke_token(tenant, issued.token.id, SYSTEM)

    response = _post_send(live_server, issued.secret, working_session, "Hi")

    assert response.status_code == 401
    assert not sim.sent_messages(working_session["externalSessionId"])
    [event] = _rows(AuditEvent, AuditEvent.action == "auth.api_failed")
    assert event.details["reason"] == "token_revoked"


def test_send_over_http_writes_the_tokens_last_use(live_server, tenant, working_session):
    secret = make_token(tenant, name="fresh")

    response = _post_send(live_server, secret, working_session, "Hi")

    assert response.status_code == 200
    [token] = _rows(tokens.ApiToken, tokens.ApiToken.name == "fresh")
    assert token.last_used_at is not None
