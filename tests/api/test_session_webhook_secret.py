"""The signing secret of a session's own webhook URL over the API: answered once by create and by rotate, never
by GET; rotation needs sessions:write, stays inside the tenant and is audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, WahaSession
from portal.services import forwarding
from tests.builders import create_session, make_token
from tests.helpers import Api


def test_create_answers_the_secret_and_get_never_shows_it(api: Api) -> None:
    created = create_session(api, webhookUrl="https://example.com/hooks")
    assert created["webhookSecret"].startswith("whsec_") and len(created["webhookSecret"]) > 30

    shown = api.get(f"/waha/sessions/{created['id']}").get_json()
    assert "webhookSecret" not in shown
    assert created["webhookSecret"] not in api.get(f"/waha/sessions/{created['id']}").get_data(as_text=True)
    assert all("webhookSecret" not in s for s in api.get("/waha/sessions").get_json()["data"])


def test_each_session_gets_its_own_random_secret_stored_encrypted(api: Api) -> None:
    first = create_session(api, "one")
    second = create_session(api, "two")
    assert first["webhookSecret"] != second["webhookSecret"]
    raw = db.session.execute(
        db.text("SELECT webhook_secret FROM waha_sessions WHERE id = :id"), {"id": first["id"]}
    ).scalar_one()
    assert raw and first["webhookSecret"] not in raw  # ciphertext at rest


def test_rotate_answers_a_new_secret_that_signs_from_now_on(api: Api) -> None:
    created = create_session(api, webhookUrl="https://example.com/hooks")
    response = api.post(f"/waha/sessions/{created['id']}/webhook-secret")
    assert response.status_code == 200
    body = response.get_json()
    assert body["sessionId"] == created["id"]
    assert body["webhookSecret"].startswith("whsec_") and body["webhookSecret"] != created["webhookSecret"]
    db.session.expire_all()
    row = db.session.get(WahaSession, created["id"])
    assert forwarding.session_webhook_secret(row) == body["webhookSecret"]


def test_rotate_is_audited(api: Api, tenant: Any) -> None:
    created = create_session(api)
    api.post(f"/waha/sessions/{created['id']}/webhook-secret")
    [row] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "session.rotate_webhook_secret"))
    assert (row.tenant_id, row.target_type, row.target_id, row.actor_type) == (
        tenant.id,
        "session",
        created["id"],
        "token",
    )
    assert "whsec_" not in str(row.details)


def test_another_tenants_session_is_not_found(api: Api, other_session: dict[str, Any]) -> None:
    response = api.post(f"/waha/sessions/{other_session['id']}/webhook-secret")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "session_not_found"


def test_read_only_token_cannot_rotate(api: Api, client: Any, tenant: Any) -> None:
    created = create_session(api)
    reader = Api(client, make_token(tenant, ["sessions:read"]))
    response = reader.post(f"/waha/sessions/{created['id']}/webhook-secret")
    assert response.status_code == 403
    assert response.get_json()["error"]["details"]["required"] == "sessions:write"
    assert not list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "session.rotate_webhook_secret")))
