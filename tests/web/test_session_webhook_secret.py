"""The session's webhook signing secret in the portal: shown once after creating the session, replaced (never
shown again) by a confirmed, CSRF-protected, audited action that viewers do not have."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, WahaSession
from portal.services import session_secrets
from tests.builders import make_tenant, new_session
from tests.helpers import csrf_token

SECRET = re.compile(r'id="session-webhook-secret"[^>]*>(whsec_[A-Za-z0-9+/=]+)<')


def test_create_shows_the_secret_once_then_it_is_gone(owner_client, tenant):
    token = csrf_token(owner_client, "/sessions/new")
    response = owner_client.post(
        "/sessions/new",
        data={
            "csrf_token": token,
            "name": "Support",
            "engine": "",
            "webhook_url": "https://hooks.example.com/waha",
            "webhook_events": ["message"],
            "idempotency_key": "k-1",
        },
    )
    assert response.status_code == 303
    session = db.session.scalar(select(WahaSession).where(WahaSession.tenant_id == tenant.id))
    location = response.headers["Location"]
    assert f"/sessions/{session.id}/webhook-secret/" in location and "whsec_" not in location

    page = owner_client.get(location)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    shown = SECRET.search(page.get_data(as_text=True)).group(1)
    assert shown == session_secrets.secret_for(session)

    again = owner_client.get(location)
    assert again.status_code == 410 and shown not in again.get_data(as_text=True)
    assert shown not in owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)


def test_create_without_a_webhook_url_goes_straight_to_linking_a_phone(owner_client, tenant):
    token = csrf_token(owner_client, "/sessions/new")
    response = owner_client.post(
        "/sessions/new",
        data={"csrf_token": token, "name": "Support", "engine": "", "webhook_url": "", "idempotency_key": "k-2"},
    )
    session = db.session.scalar(select(WahaSession).where(WahaSession.tenant_id == tenant.id))
    # nothing is signed for this session yet: no secret page in the way of the QR code
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/sessions/{session.id}")
    page = owner_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "whsec_" not in page and "Make a new secret" in page


def test_rotate_needs_confirmation_and_csrf_then_shows_the_new_secret_once(owner_client, tenant):
    session = new_session(tenant)
    old = session_secrets.secret_for(session)
    url = f"/sessions/{session.id}/webhook-secret"
    assert url in owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)

    assert owner_client.post(url, data={}).status_code == 400  # no CSRF token
    db.session.expire_all()
    assert session_secrets.secret_for(db.session.get(WahaSession, session.id)) == old

    response = owner_client.post(url, data={"csrf_token": csrf_token(owner_client, url)})
    assert response.status_code == 303
    shown = SECRET.search(owner_client.get(response.headers["Location"]).get_data(as_text=True)).group(1)
    db.session.expire_all()
    assert shown != old and shown == session_secrets.secret_for(db.session.get(WahaSession, session.id))
    [row] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "session.rotate_webhook_secret"))
    assert (row.target_id, row.actor_type) == (session.id, "user")


def test_viewer_cannot_rotate_or_see_the_button(viewer_client, tenant):
    session = new_session(tenant)
    old = session_secrets.secret_for(session)
    assert "webhook-secret" not in viewer_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    response = viewer_client.post(
        f"/sessions/{session.id}/webhook-secret", data={"csrf_token": csrf_token(viewer_client, "/sessions/")}
    )
    assert response.status_code == 403
    db.session.expire_all()
    assert session_secrets.secret_for(db.session.get(WahaSession, session.id)) == old


def test_another_tenants_session_is_not_found(owner_client):
    other = new_session(make_tenant("globex"), "Theirs")
    url = f"/sessions/{other.id}/webhook-secret"
    assert owner_client.get(url).status_code == 404
    assert owner_client.post(url, data={"csrf_token": csrf_token(owner_client, "/sessions/")}).status_code == 404
