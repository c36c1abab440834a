"""Bearer authentication: API tokens and JWTs, permissions, and the audit trail of every refusal."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from portal.models import AuditEvent, utcnow
from portal.services import audit
from portal.services import tokens as tokens_service
from tests.builders import TEST_ACTOR, make_token
from tests.helpers import Api, claims, hs256, rs256


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _failures() -> list[AuditEvent]:
    from sqlalchemy import select

    from portal.extensions import db

    db.session.expire_all()
    return list(
        db.session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.api_failed").order_by(AuditEvent.id))
    )


def _assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# ---- API tokens -----------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_list_sessions_with_token_answers_200(api: Api) -> None:
    response = api.get("/waha/sessions")
    assert response.status_code == 200
    assert response.get_json() == {"data": [], "nextCursor": None}


@pytest.mark.smoke
def test_request_without_credentials_is_401(api: Api) -> None:
    _assert_unauthorized(api.as_(None).get("/waha/sessions"))


def test_basic_auth_scheme_is_401(client: Any, token: str) -> None:
    response = client.get("/waha/sessions", headers={"Authorization": f"Basic {token}"})
    _assert_unauthorized(response)


@pytest.mark.parametrize("credential", ["wp_deadbeef0000_nottherealsecret", "garbage", "a.b.c"])
def test_unknown_credential_is_401(api: Api, credential: str) -> None:
    _assert_unauthorized(api.as_(credential).get("/waha/sessions"))


def test_token_with_wrong_secret_is_401(api: Api, token: str) -> None:
    _assert_unauthorized(api.as_(token[:-4] + "AAAA").get("/waha/sessions"))


def test_revoked_token_is_401(api: Api, tenant: Any, token: str) -> None:
    token_row = tokens_service.list_tokens(tenant)[0]
    tokens_service.revoke_token(tenant, token_row.id, TEST_ACTOR)
    _assert_unauthorized(api.get("/waha/sessions"))


def test_expired_token_is_401(api: Api, tenant: Any) -> None:
    from portal.extensions import db

    secret = make_token(tenant, name="short-lived", expires_at=utcnow() + timedelta(minutes=1))
    row = next(t for t in tokens_service.list_tokens(tenant) if t.name == "short-lived")
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    _assert_unauthorized(api.as_(secret).get("/waha/sessions"))


@pytest.mark.smoke
def test_token_without_scope_is_403(api: Api, tenant: Any) -> None:
    reader = make_token(tenant, scopes=["sessions:read"])
    response = api.as_(reader).post("/waha/sessions", json={"sessionName": "x"})
    assert response.status_code == 403
    body = response.get_json()["error"]
    assert body["code"] == "forbidden"
    assert body["details"] == {"required": "sessions:write"}


def test_token_scope_allows_its_endpoint(api: Api, tenant: Any) -> None:
    reader = make_token(tenant, scopes=["sessions:read"])
    assert api.as_(reader).get("/waha/sessions").status_code == 200


def test_token_use_records_last_used(api: Api, tenant: Any) -> None:
    from portal.extensions import db

    api.get("/waha/sessions")
    db.session.expire_all()
    assert tokens_service.list_tokens(tenant)[0].last_used_at is not None


def test_token_of_deactivated_tenant_is_401(api: Api, tenant: Any) -> None:
    from portal.extensions import db

    tenant.is_active = False
    db.session.commit()
    _assert_unauthorized(api.get("/waha/sessions"))


# ---- audit of refusals ----------------------------------------------------------------------------------------


def test_failed_authentication_is_audited_with_ip_and_request_id(api: Api) -> None:
    api.as_("garbage").get("/waha/sessions", headers={"X-Request-ID": "req-0123456789"})
    event = _failures()[-1]
    assert event.actor_type == "anonymous"
    assert event.ip == "127.0.0.1"
    assert event.request_id == "req-0123456789"
    assert event.details["reason"] == "credential_unrecognised"
    assert event.details["path"] == "/waha/sessions"


def test_missing_credentials_are_audited(api: Api) -> None:
    api.as_(None).get("/waha/sessions")
    assert _failures()[-1].details["reason"] == "missing_credentials"


def test_revoked_token_failure_names_its_tenant(api: Api, tenant: Any) -> None:
    token_row = tokens_service.list_tokens(tenant)[0]
    tokens_service.revoke_token(tenant, token_row.id, TEST_ACTOR)
    api.get("/waha/sessions")
    event = _failures()[-1]
    assert event.tenant_id == tenant.id
    assert event.details["reason"] == "token_revoked"


def test_expired_token_failure_names_reason(api: Api, tenant: Any) -> None:
    from portal.extensions import db

    secret = make_token(tenant, name="old", expires_at=utcnow() + timedelta(minutes=1))
    row = next(t for t in tokens_service.list_tokens(tenant) if t.name == "old")
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    api.as_(secret).get("/waha/sessions")
    assert _failures()[-1].details["reason"] == "token_expired"


def test_forbidden_call_is_audited(api: Api, tenant: Any) -> None:
    reader = make_token(tenant, scopes=["sessions:read"])
    api.as_(reader).post("/waha/sessions", json={"sessionName": "x"})
    event = audit.latest(tenant.id, "auth.api_forbidden")
    assert event is not None
    assert event.actor_type == "token"
    assert event.details["permission"] == "sessions:write"


# ---- JWTs -----------------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_hs256_jwt_is_accepted(api: Api, jwt_settings: Any) -> None:
    response = api.as_(hs256(claims())).get("/waha/sessions")
    assert response.status_code == 200, response.get_json()


def test_rs256_jwt_from_jwks_is_accepted(api: Api, jwt_settings: Any, jwks_server: Any) -> None:
    response = api.as_(rs256(claims(), jwks_server.keys[0])).get("/waha/sessions")
    assert response.status_code == 200, response.get_json()


def test_jwks_is_fetched_once_for_many_calls(api: Api, jwt_settings: Any, jwks_server: Any) -> None:
    credential = rs256(claims(), jwks_server.keys[0])
    for _ in range(3):
        assert api.as_(credential).get("/waha/sessions").status_code == 200
    assert jwks_server.fetches == 1


def test_jwt_signed_by_rotated_key_refetches_jwks(api: Api, jwt_settings: Any, jwks_server: Any) -> None:
    assert api.as_(rs256(claims(), jwks_server.keys[0])).get("/waha/sessions").status_code == 200
    new_key = jwks_server.rotate("key-2")
    assert api.as_(rs256(claims(), new_key)).get("/waha/sessions").status_code == 200
    assert jwks_server.fetches == 2


def test_jwt_signed_by_unknown_rsa_key_is_401(api: Api, jwt_settings: Any) -> None:
    stranger = RSAKey.generate_key(2048, {"kid": "key-1"})
    _assert_unauthorized(api.as_(rs256(claims(), stranger)).get("/waha/sessions"))


def test_jwt_with_bad_signature_is_401(api: Api, jwt_settings: Any) -> None:
    _assert_unauthorized(api.as_(hs256(claims(), secret="another-secret-0123456789-abcdefghij")).get("/waha/sessions"))
    assert _failures()[-1].details["reason"] == "jwt_bad_signature"


def test_expired_jwt_is_401(api: Api, jwt_settings: Any) -> None:
    token = hs256(claims(exp=int(utcnow().timestamp()) - 120))
    _assert_unauthorized(api.as_(token).get("/waha/sessions"))
    assert _failures()[-1].details["reason"] == "jwt_expired"


def test_jwt_without_expiry_is_401(api: Api, jwt_settings: Any) -> None:
    payload = claims()
    del payload["exp"]
    _assert_unauthorized(api.as_(hs256(payload)).get("/waha/sessions"))


def test_jwt_not_yet_valid_is_401(api: Api, jwt_settings: Any) -> None:
    token = hs256(claims(nbf=int(utcnow().timestamp()) + 600))
    _assert_unauthorized(api.as_(token).get("/waha/sessions"))


def test_jwt_for_wrong_audience_is_401(api: Api, jwt_settings: Any) -> None:
    _assert_unauthorized(api.as_(hs256(claims(aud="another-app"))).get("/waha/sessions"))
    assert _failures()[-1].details["reason"] == "jwt_invalid_aud"


def test_jwt_from_wrong_issuer_is_401(api: Api, jwt_settings: Any) -> None:
    _assert_unauthorized(api.as_(hs256(claims(iss="https://evil.example.com/"))).get("/waha/sessions"))
    assert _failures()[-1].details["reason"] == "jwt_invalid_iss"


def test_jwt_with_alg_none_is_401(api: Api, jwt_settings: Any) -> None:
    token = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims()) + "."
    _assert_unauthorized(api.as_(token).get("/waha/sessions"))
    assert _failures()[-1].details["reason"] == "jwt_algorithm_not_allowed"


def test_jwt_with_algorithm_outside_allow_list_is_401(api: Api, jwt_settings: Any) -> None:
    jwt_settings["JWT_ALGORITHMS"] = ["RS256"]
    _assert_unauthorized(api.as_(hs256(claims())).get("/waha/sessions"))
    assert _failures()[-1].details["reason"] == "jwt_algorithm_not_allowed"


def test_hs256_token_signed_with_rsa_public_key_is_401(api: Api, jwt_settings: Any, jwks_server: Any) -> None:
    # Algorithm confusion: an HS256 token keyed with the provider's public key must not pass.
    import hashlib
    import hmac

    public_pem = jwks_server.keys[0].as_pem(private=False)
    signing_input = _b64({"alg": "HS256", "kid": "key-1"}) + "." + _b64(claims())
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")
    _assert_unauthorized(api.as_(token).get("/waha/sessions"))


def test_jwt_for_unknown_tenant_is_401(api: Api, jwt_settings: Any) -> None:
    _assert_unauthorized(api.as_(hs256(claims(tenant="nobody"))).get("/waha/sessions"))


def test_jwt_without_issuer_setting_is_refused(api: Api, jwt_settings: Any) -> None:
    jwt_settings["JWT_ISSUER"] = None
    _assert_unauthorized(api.as_(hs256(claims())).get("/waha/sessions"))
    assert _failures()[-1].details["reason"] == "jwt_not_configured"


def test_jwt_viewer_role_cannot_create_session(api: Api, jwt_settings: Any) -> None:
    response = api.as_(hs256(claims(roles=["viewer"]))).post("/waha/sessions", json={"sessionName": "x"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_jwt_roles_claim_setting_is_honoured(api: Api, jwt_settings: Any) -> None:
    jwt_settings["JWT_ROLES_CLAIM"] = "groups"
    token = hs256(claims(roles=None, groups="viewer"))
    assert api.as_(token).get("/waha/sessions").status_code == 200
    assert api.as_(token).post("/waha/sessions", json={"sessionName": "x"}).status_code == 403


def test_jwt_tenant_claim_setting_is_honoured(api: Api, jwt_settings: Any, other_tenant: Any) -> None:
    jwt_settings["JWT_TENANT_CLAIM"] = "org"
    token = hs256(claims(tenant=None, org="globex"))
    response = api.as_(token).post("/waha/sessions", json={"sessionName": "jwt-made"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["tenantId"] == str(other_tenant.id)


def test_jwt_caller_is_the_audit_actor(api: Api, jwt_settings: Any, tenant: Any) -> None:
    api.as_(hs256(claims(roles=["admin"]))).post("/waha/sessions", json={"sessionName": "by-jwt"})
    event = audit.latest(tenant.id, "session.create")
    assert event is not None
    assert (event.actor_type, event.actor_id) == ("token", "user-42")
    assert event.actor_label == "jwt user-42"


# ---- every endpoint declares a permission ---------------------------------------------------------------------


def test_every_api_endpoint_declares_its_permission(app: Any) -> None:
    from portal.permissions import PERMISSIONS

    views = {name: fn for name, fn in app.view_functions.items() if name.startswith("api.")}
    assert views
    for name, view in views.items():
        assert hasattr(view, "required_permission"), name
        assert view.required_permission is None or view.required_permission in PERMISSIONS, name


def test_only_docs_endpoints_are_public(app: Any) -> None:
    public = {
        name for name, fn in app.view_functions.items() if name.startswith("api.") and fn.required_permission is None
    }
    assert public == {"api.openapi_document", "api.docs"}


# ---- JWT lifetime (JWT_MAX_LIFETIME, default 24 h) ---------------------------------------------------------------


def test_jwt_living_longer_than_the_maximum_is_401(api: Api, jwt_settings: Any) -> None:
    now = int(utcnow().timestamp())
    _assert_unauthorized(api.as_(hs256(claims(iat=now, exp=now + 30 * 86400))).get("/waha/sessions"))
    assert _failures()[-1].details["reason"] == "jwt_lifetime_too_long"


def test_jwt_without_iat_is_judged_by_its_remaining_lifetime(api: Api, jwt_settings: Any) -> None:
    now = int(utcnow().timestamp())
    assert api.as_(hs256(claims(iat=None, exp=now + 600))).get("/waha/sessions").status_code == 200
    _assert_unauthorized(api.as_(hs256(claims(iat=None, exp=now + 2 * 86400))).get("/waha/sessions"))
    assert _failures()[-1].details["reason"] == "jwt_lifetime_too_long"


def test_jwt_issued_in_the_future_is_401(api: Api, jwt_settings: Any) -> None:
    now = int(utcnow().timestamp())
    _assert_unauthorized(api.as_(hs256(claims(iat=now + 3600, exp=now + 7200))).get("/waha/sessions"))


def test_jwt_max_lifetime_is_configurable(api: Api, jwt_settings: Any, app: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "JWT_MAX_LIFETIME", 60)
    _assert_unauthorized(api.as_(hs256(claims())).get("/waha/sessions"))  # five minutes is now too long
