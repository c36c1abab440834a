"""CSV exports over the API: GET <list>/export with the list's filters, streamed, checked against the OpenAPI
document (Api), tenant-scoped, with the list's permission, audited."""

from __future__ import annotations

import csv
import io
from typing import Any

from portal.extensions import db
from portal.models import WebhookEndpoint
from portal.services import audit as audit_service
from portal.services import exports
from portal.services.audit import Actor
from tests.builders import make_token, new_session, stored_message
from tests.helpers import Api


def rows_of(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_message_export_takes_the_lists_filters(api: Api, tenant: Any) -> None:
    a, b = new_session(tenant, "Alpha"), new_session(tenant, "Beta")
    wanted = stored_message(tenant, a, direction="in", body="hello there")
    stored_message(tenant, a, direction="out", body="hello back")
    stored_message(tenant, b, direction="in", body="hello from beta")
    response = api.get(f"/waha/messages/export?sessionId={a.id}&direction=in&q=hello")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["X-Export-Rows"] == "1"
    listed = api.get(f"/waha/messages?sessionId={a.id}&direction=in&q=hello").get_json()["data"]
    rows = rows_of(response)
    assert rows[0] == list(exports.MESSAGE_COLUMNS)
    assert [int(r[0]) for r in rows[1:]] == [m["id"] for m in listed] == [wanted.id]
    event = audit_service.latest(tenant.id, "export.messages")
    assert event is not None and event.actor_type == "token"
    assert event.details["filters"] == {"session_id": a.id, "direction": "in", "q": "hello"}


def test_message_export_refuses_list_only_and_unknown_parameters(api: Api) -> None:
    for query in ("cursor=abc", "limit=5", "direction=sideways", "since=yesterday"):
        response = api.get(f"/waha/messages/export?{query}")
        assert response.status_code == 400, query
        assert response.get_json()["error"]["code"] == "validation_error"


def test_message_export_of_another_tenants_session_is_404(api: Api, other_api: Api, other_tenant: Any) -> None:
    theirs = new_session(other_tenant, "Theirs")
    stored_message(other_tenant, theirs, body="not yours")
    response = api.get(f"/waha/messages/export?sessionId={theirs.id}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "session_not_found"
    assert "not yours" not in api.get("/waha/messages/export").get_data(as_text=True)
    assert len(rows_of(other_api.get("/waha/messages/export"))) == 2


def test_audit_export_needs_the_audit_scope(api: Api, tenant: Any) -> None:
    assert api.get("/waha/audit/export").status_code == 403  # the default scopes leave the audit log out
    audit_service.record(tenant.id, "token.create", Actor(type="user", label="ann@acme"), commit=True)
    auditor = api.as_(make_token(tenant, ["audit:read"], name="auditor"))
    response = auditor.get("/waha/audit/export?action=token.create")
    assert response.status_code == 200
    rows = rows_of(response)
    assert rows[0] == list(exports.AUDIT_COLUMNS)
    assert {r[2] for r in rows[1:]} == {"token.create"} and "ann@acme" in {r[5] for r in rows[1:]}


def test_audit_filters_are_plain_text_not_patterns(api: Api, tenant: Any) -> None:
    for action, label in (("session.create", "ann@acme"), ("token.create", "100%_sure@acme")):
        audit_service.record(tenant.id, action, Actor(type="user", label=label), commit=True)
    auditor = api.as_(make_token(tenant, ["audit:read"], name="auditor"))

    def actions(query: str) -> set[str]:
        return {r[2] for r in rows_of(auditor.get(f"/waha/audit/export?{query}"))[1:]}

    assert actions("action=%25") == actions("action=_") == actions("action=s_ssion") == set()
    assert actions("action=session.") == {"session.create"}
    assert actions("actor=%25_") == {"token.create"}  # the literal text "%_" of one label
    assert actions("actor=ANN") == {"session.create"}  # case does not matter


def test_delivery_export_refuses_another_tenants_endpoint(api: Api, other_tenant: Any) -> None:
    theirs = WebhookEndpoint(tenant_id=other_tenant.id, url="https://hooks.example.com/x", events=["*"], secret="s")
    db.session.add(theirs)
    db.session.commit()
    response = api.get(f"/waha/webhooks/deliveries/export?endpointId={theirs.id}")
    assert response.status_code == 404
    empty = api.get("/waha/webhooks/deliveries/export?status=failed")
    assert empty.status_code == 200
    assert empty.get_data(as_text=True) == ",".join(exports.DELIVERY_COLUMNS) + "\r\n"


def test_contact_export_needs_messages_read(api: Api, tenant: Any) -> None:
    assert api.get("/waha/contacts/export?q=ann").status_code == 200
    sender_only = api.as_(make_token(tenant, ["sessions:read"], name="narrow"))
    assert sender_only.get("/waha/contacts/export").status_code == 403
