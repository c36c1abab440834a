"""Every mutating API call leaves an audit event carrying the caller, its IP and the request id."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent
from tests.helpers import Api

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63646060f80f"
    "0002870180eb47ba920000000049454e44ae426082"
)

# (method, path under the session, request kwargs, audit action)
MUTATIONS = [
    ("POST", "/stop", {}, "session.stop"),
    ("POST", "/start", {}, "session.start"),
    ("POST", "/restart", {}, "session.restart"),
    ("POST", "/logout", {}, "session.logout"),
    ("POST", "/send", {"json": {"to": "+491701234567", "text": "hi"}}, "message.send"),
    (
        "POST",
        "/send/media",
        {
            "data": {"file": (io.BytesIO(PNG), "p.png", "image/png"), "to": "+491701234567"},
            "content_type": "multipart/form-data",
        },
        "message.send",
    ),
    ("DELETE", "", {}, "session.delete"),
]


def _events_of(request_id: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id)))


@pytest.mark.parametrize("method,suffix,kwargs,action", MUTATIONS, ids=[m[3] + m[1] for m in MUTATIONS])
def test_mutation_is_audited_with_request_context(
    api: Api, tenant: Any, working_session: Any, method: str, suffix: str, kwargs: dict[str, Any], action: str
) -> None:
    request_id = f"audit-{action}-{suffix.strip('/') or 'x'}".replace("/", "-").replace(".", "-")
    response = api.call(
        method, f"/waha/sessions/{working_session['id']}{suffix}", headers={"X-Request-ID": request_id}, **kwargs
    )
    assert response.status_code in (200, 204), response.get_json()
    events = [e for e in _events_of(request_id) if e.action == action]
    assert len(events) == 1
    event = events[0]
    assert (event.tenant_id, event.actor_type, event.ip) == (tenant.id, "token", "127.0.0.1")


def test_create_is_audited_with_request_context(api: Api, tenant: Any) -> None:
    response = api.post("/waha/sessions", json={"sessionName": "audited"}, headers={"X-Request-ID": "audit-create-1"})
    assert response.status_code == 201
    assert [e.action for e in _events_of("audit-create-1")] == ["session.create"]


def test_pairing_code_is_audited_with_request_context(api: Api, session: Any) -> None:
    api.post(
        f"/waha/sessions/{session['id']}/pairing-code",
        json={"phoneNumber": "+491701234567"},
        headers={"X-Request-ID": "audit-pairing-1"},
    )
    assert [e.action for e in _events_of("audit-pairing-1")] == ["session.pairing_code"]


def test_reads_are_not_audited(api: Api, session: Any) -> None:
    api.get(f"/waha/sessions/{session['id']}", headers={"X-Request-ID": "audit-read-1"})
    api.get("/waha/messages", headers={"X-Request-ID": "audit-read-2"})
    assert _events_of("audit-read-1") == [] and _events_of("audit-read-2") == []
