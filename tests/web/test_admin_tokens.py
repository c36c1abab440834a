"""The API tokens page: create with scopes and expiry, secret shown once, list, revoke behind a confirmation."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select

from portal.extensions import db, redis_store
from portal.models import ApiToken, AuditEvent
from portal.services import tokens as tokens_service
from tests.builders import TEST_ACTOR, make_tenant, member
from tests.helpers import post, text

PAGE = "/admin/tokens/"


def _create(client, **overrides):
    data = {"name": "CRM sync", "scopes": ["messages:send", "sessions:read"], "expiry": "30", **overrides}
    return post(client, PAGE, data, page=PAGE)


@pytest.mark.parametrize("role,status", [("viewer", 403), ("operator", 403), ("admin", 200), ("owner", 200)])
def test_tokens_page_is_for_admins_and_owners(login, tenant, role, status):
    client = login(member(tenant, role))
    assert client.get(PAGE).status_code == status


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_create_by_direct_post_is_forbidden_below_admin(login, tenant, owner, role):
    client = login(member(tenant, role))
    response = _create(client)
    assert response.status_code == 403
    assert db.session.scalar(select(ApiToken)) is None


def test_tokens_page_shows_an_empty_state(login, owner):
    body = text(login(owner).get(PAGE))
    assert "No API tokens yet" in body and "Create a token" in body


def _secret_on(body: str) -> str:
    return re.search(r'id="token-secret"[^>]*>(wp_[^<]+)<', body).group(1)


def test_create_shows_the_secret_once_and_stores_its_hash(login, owner):
    client = login(owner)
    response = client.get(_create(client).headers["Location"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="token-secret"[^>]*>(wp_[^<]+)<', text(response)).group(1)
    token = db.session.scalar(select(ApiToken))
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.scopes == ["messages:send", "sessions:read"]
    assert secret not in text(client.get(PAGE))
    assert tokens_service.authenticate(secret).id == token.id


def test_create_redirects_so_a_reload_creates_nothing(login, owner):
    client = login(owner)
    response = _create(client)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/admin/tokens/created/")
    client.get(response.headers["Location"])
    assert len(db.session.scalars(select(ApiToken)).all()) == 1


def test_created_secret_is_not_in_the_url_a_cookie_or_a_flash(login, owner):
    client = login(owner)
    response = _create(client)
    location = response.headers["Location"]
    secret = _secret_on(text(client.get(location)))
    assert secret not in location
    assert all(secret not in cookie for cookie in response.headers.getlist("Set-Cookie"))
    with client.session_transaction() as session:
        assert secret not in str(dict(session))


def test_created_page_opened_again_says_the_secret_was_shown(login, owner):
    client = login(owner)
    location = _create(client).headers["Location"]
    secret = _secret_on(text(client.get(location)))
    again = client.get(location)
    assert again.status_code == 410
    assert "shown only once" in text(again) and secret not in text(again)


def test_created_page_is_only_for_the_person_who_created_the_token(login, tenant, owner):
    location = _create(login(owner)).headers["Location"]
    colleague = login(member(tenant, "admin"))
    assert colleague.get(location).status_code == 410
    # the colleague's visit did not use up the creator's one look
    assert _secret_on(text(login(owner).get(location))).startswith("wp_")


def test_created_secret_waits_encrypted_and_expires_within_ten_minutes(login, owner):
    client = login(owner)
    location = _create(client).headers["Location"]
    keys = list(redis_store.client.scan_iter("portal:web:once:*"))
    assert len(keys) == 1 and 0 < redis_store.client.ttl(keys[0]) <= 600
    stored = redis_store.client.get(keys[0])
    secret = _secret_on(text(client.get(location)))
    assert secret.encode() not in stored
    assert redis_store.client.exists(keys[0]) == 0


def test_create_sets_the_chosen_expiry(login, owner):
    _create(login(owner), expiry="365")
    token = db.session.scalar(select(ApiToken))
    assert 364 <= (token.expires_at - token.created_at).days <= 365


def test_create_without_expiry_never_expires(login, owner):
    _create(login(owner), expiry="never")
    assert db.session.scalar(select(ApiToken)).expires_at is None


def test_create_without_scopes_is_refused_in_words(login, owner):
    response = _create(login(owner), scopes=[])
    assert response.status_code == 400
    assert "Pick at least one scope" in text(response)
    assert db.session.scalar(select(ApiToken)) is None


def test_create_with_an_unknown_scope_is_refused(login, owner):
    response = _create(login(owner), scopes=["everything"])
    assert response.status_code == 400
    assert db.session.scalar(select(ApiToken)) is None


def test_create_without_csrf_token_is_rejected(login, owner):
    client = login(owner)
    response = client.post(PAGE, data={"name": "x", "scopes": ["sessions:read"], "expiry": "30"})
    assert response.status_code == 400
    assert db.session.scalar(select(ApiToken)) is None


def test_list_shows_prefix_scopes_and_status(login, tenant, owner):
    issued = tokens_service.create_token(tenant, "Billing", ["sessions:read"], TEST_ACTOR)
    tokens_service.revoke_token(tenant, issued.token.id, TEST_ACTOR)
    tokens_service.create_token(tenant, "Live one", ["messages:send"], TEST_ACTOR)
    body = text(login(owner).get(PAGE))
    assert f"wp_{issued.token.prefix}_" in body and "sessions:read" in body
    assert "revoked" in body and "active" in body
    assert issued.secret not in body


def test_revoke_asks_for_confirmation_first(login, tenant, owner):
    issued = tokens_service.create_token(tenant, "Billing", None, TEST_ACTOR)
    page = login(owner).get(f"/admin/tokens/{issued.token.id}/revoke")
    assert page.status_code == 200
    assert "Revoke the token" in text(page)
    assert db.session.get(ApiToken, issued.token.id).revoked_at is None


def test_revoke_stops_the_token(login, tenant, owner):
    issued = tokens_service.create_token(tenant, "Billing", None, TEST_ACTOR)
    client = login(owner)
    response = post(client, f"/admin/tokens/{issued.token.id}/revoke", page=PAGE)
    assert response.status_code == 302
    assert tokens_service.authenticate(issued.secret) is None
    assert "is revoked" in text(client.get(PAGE))


def test_revoke_without_csrf_token_is_rejected(login, tenant, owner):
    issued = tokens_service.create_token(tenant, "Billing", None, TEST_ACTOR)
    response = login(owner).post(f"/admin/tokens/{issued.token.id}/revoke")
    assert response.status_code == 400
    assert tokens_service.authenticate(issued.secret) is not None


@pytest.mark.parametrize("method", ["get", "post"])
def test_revoke_of_another_tenants_token_is_not_found(login, owner, method):
    issued = tokens_service.create_token(make_tenant("other"), "Theirs", None, TEST_ACTOR)
    client = login(owner)
    path = f"/admin/tokens/{issued.token.id}/revoke"
    response = client.get(path) if method == "get" else post(client, path, page=PAGE)
    assert response.status_code == 404
    assert tokens_service.authenticate(issued.secret) is not None


def test_revoke_is_audited_with_the_person(login, tenant, owner):
    issued = tokens_service.create_token(tenant, "Billing", None, TEST_ACTOR)
    post(login(owner), f"/admin/tokens/{issued.token.id}/revoke", page=PAGE)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "token.revoke"))
    assert event.actor_label == owner.email and event.tenant_id == tenant.id
