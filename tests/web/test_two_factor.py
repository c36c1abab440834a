"""Two-factor sign-in in the browser: the second step, remembered browsers, enrolment, the team's requirement,
the platform area and resets."""

from __future__ import annotations

import re
import time

import pyotp
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, WebAuthnCredential, utcnow
from portal.services import two_factor
from portal.services.two_factor import remembered, totp
from tests.builders import PASSWORD, TEST_ACTOR, give_second_factor, make_tenant, make_user, member
from tests.helpers import post, text
from tests.web.test_account import _finish, _start, provider, sso  # noqa: F401  (the single sign-on fixtures)


def _password(client, user):
    return post(client, "/login", {"email": user.email, "password": PASSWORD}, page="/login")


def _code(secret, steps_ahead=0):
    return pyotp.TOTP(secret).at(time.time() + steps_ahead * totp.INTERVAL)


def _second(client, code, **extra):
    return post(client, "/login/two-factor", {"code": code, **extra}, page="/login/two-factor")


def _enrol_totp(client):
    """Set up an authenticator app through the pages, as a person would; returns the secret and the codes shown."""
    post(client, "/account/two-factor/totp", page="/account/two-factor")
    page = text(client.get("/account/two-factor/totp"))
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7]+)<', page).group(1)
    assert "data:image/svg+xml" in page  # the QR code
    response = post(client, "/account/two-factor/totp/confirm", {"code": _code(secret, -1)}, page="/account/two-factor")
    assert response.status_code == 200, text(response)
    return secret, re.findall(r"<li><code>([a-z0-9-]+)</code></li>", text(response))


def test_a_user_with_a_factor_reaches_nothing_between_password_and_code(client, owner):
    secret = give_second_factor(owner)
    assert _password(client, owner).headers["Location"] == "/login/two-factor"
    assert client.get("/").status_code == 302
    assert client.get("/account").headers["Location"].startswith("/login")

    response = _second(client, _code(secret))

    assert response.headers["Location"] == "/"
    assert client.get("/").status_code == 200


def test_a_wrong_or_reused_code_is_refused_at_the_second_step(client, owner, app):
    secret = give_second_factor(owner)
    code = _code(secret)
    _password(client, owner)
    assert _second(client, code).status_code == 302
    other = app.test_client()
    _password(other, owner)
    response = _second(other, code)
    assert response.status_code == 400 and "not right" in text(response)
    assert other.get("/").status_code == 302


def test_a_recovery_code_signs_in_once(client, owner, app):
    give_second_factor(owner)
    codes = two_factor.recovery.regenerate(owner, TEST_ACTOR)
    _password(client, owner)
    assert _second(client, codes[0]).status_code == 302
    assert "You used a recovery code: 9 left." in text(client.get("/"))
    other = app.test_client()
    _password(other, owner)
    assert _second(other, codes[0]).status_code == 400


def test_a_remembered_browser_skips_the_second_step_until_a_reset(client, owner, tenant):
    secret = give_second_factor(owner)
    _password(client, owner)
    assert _second(client, _code(secret), remember_browser="y").status_code == 302
    assert client.get_cookie(remembered.COOKIE) is not None
    post(client, "/logout")

    assert _password(client, owner).headers["Location"] == "/"  # no second step

    post(client, "/logout")
    two_factor.reset(owner, TEST_ACTOR, tenant_id=tenant.id)
    give_second_factor(owner)
    assert _password(client, owner).headers["Location"] == "/login/two-factor"


def test_the_team_requirement_leads_to_enrolment_and_nowhere_else(client, tenant):
    tenant.require_two_factor = True
    db.session.commit()
    user = member(tenant, "operator")

    assert _password(client, user).headers["Location"] == "/account/two-factor"
    assert client.get("/sessions/").headers["Location"] == "/account/two-factor"
    assert client.get("/account").headers["Location"] == "/account/two-factor"

    _, codes = _enrol_totp(client)

    assert len(codes) == 10
    assert client.get("/sessions/").status_code == 200


def test_turning_on_the_requirement_stops_members_without_a_factor_at_once(client, tenant, owner):
    user = member(tenant, "operator")
    _password(client, user)
    assert client.get("/").status_code == 200
    tenant.require_two_factor = True
    db.session.commit()
    assert client.get("/").headers["Location"] == "/account/two-factor"


def test_owners_turn_the_requirement_on_in_settings_and_it_is_audited(login, tenant, owner):
    give_second_factor(owner)
    client = login(owner)
    response = post(
        client,
        "/admin/settings/",
        {"send_rate_per_minute": 30, "retention_messages_days": 90, "retention_events_days": 14,
         "read_receipts": "y", "require_two_factor": "y"},
        page="/admin/settings/",
    )  # fmt: skip
    assert response.status_code == 302
    db.session.refresh(tenant)
    assert tenant.require_two_factor
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "tenant.settings_update")).one()
    assert event.details["require_two_factor"] == {"from": False, "to": True}


def test_the_platform_area_requires_a_factor(client, tenant):
    root = make_user(tenant, "owner", email="root@example.com", is_platform_admin=True)
    two_factor.reset(root, TEST_ACTOR, tenant_id=None)
    assert _password(client, root).headers["Location"] == "/"
    assert client.get("/").status_code == 200  # their tenant does not require one
    assert client.get("/platform/").headers["Location"] == "/account/two-factor"
    assert client.get("/platform/servers/").headers["Location"] == "/account/two-factor"

    _enrol_totp(client)

    assert client.get("/platform/tenants").status_code == 200


def test_an_owner_resets_a_members_factors_and_it_is_audited(login, tenant, owner, app):
    give_second_factor(owner)
    user = member(tenant, "operator")
    give_second_factor(user)
    client = login(owner)
    assert "Reset two-factor" in text(client.get("/admin/team/"))
    page = f"/admin/team/{user.id}/two-factor/reset"
    assert client.get(page).status_code == 200

    assert post(client, page, page=page).status_code == 303

    assert not two_factor.has_factor(user)
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.two_factor_reset")).one()
    assert event.tenant_id == tenant.id and event.target_id == str(user.id) and event.actor_id == str(owner.id)


def test_resetting_another_tenants_user_is_not_found(login, tenant, owner):
    give_second_factor(owner)
    stranger = make_user(make_tenant("other", name="Other"), "operator", email="x@other.example.com")
    give_second_factor(stranger)
    client = login(owner)
    page = f"/admin/team/{stranger.id}/two-factor/reset"
    assert client.get(page).status_code == 404
    assert post(client, page, page="/admin/team/").status_code == 404
    assert two_factor.has_factor(stranger)


def test_admins_who_are_not_owners_cannot_reset(login, tenant):
    admin = member(tenant, "admin")
    user = member(tenant, "operator")
    assert login(admin).get(f"/admin/team/{user.id}/two-factor/reset").status_code == 403


def test_a_platform_admin_resets_a_member_of_any_tenant(login, tenant, owner):
    root = make_user(None, email="root@example.com", is_platform_admin=True)
    give_second_factor(owner)
    client = login(root)
    page = f"/platform/tenants/{tenant.id}/members/{owner.id}/two-factor/reset"
    assert post(client, page, page=page).status_code == 303
    assert not two_factor.has_factor(owner)


def test_turning_off_the_app_needs_the_password_or_a_code(login, owner):
    give_second_factor(owner)
    client = login(owner)
    wrong = post(client, "/account/two-factor/totp/disable", {"reauth": "guess"}, page="/account/two-factor")
    assert wrong.status_code == 400 and two_factor.has_factor(owner)
    right = post(client, "/account/two-factor/totp/disable", {"reauth": PASSWORD}, page="/account/two-factor")
    assert right.status_code == 303
    db.session.refresh(owner)
    assert not two_factor.has_factor(owner)
    actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == str(owner.id))))
    assert {"user.totp_disabled", "auth.second_factor_failed"} <= actions


def test_new_recovery_codes_need_the_password_or_a_code(login, owner):
    # A browser session alone (a borrowed or stolen one) must not mint a new way in.
    secret = give_second_factor(owner)
    old = two_factor.recovery.regenerate(owner, TEST_ACTOR)
    client = login(owner)
    left = two_factor.status(owner).recovery_left
    path = "/account/two-factor/recovery-codes"
    assert 'name="recovery-reauth"' in text(client.get("/account/two-factor"))

    unconfirmed = post(client, path, page="/account/two-factor")
    wrong = post(client, path, {"recovery-reauth": "guess"}, page="/account/two-factor")

    assert unconfirmed.status_code == wrong.status_code == 400
    assert "neither your password nor a current code" in text(wrong)
    assert two_factor.status(owner).recovery_left == left  # the old codes stand: nothing was replaced
    by_password = post(client, path, {"recovery-reauth": PASSWORD}, page="/account/two-factor")
    by_code = post(client, path, {"recovery-reauth": _code(secret, 1)}, page="/account/two-factor")
    for made in (by_password, by_code):
        assert made.status_code == 200
        codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", text(made))
        assert len(codes) == 10 and not set(codes) & set(old)
    actions = list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == str(owner.id))))
    assert actions.count("user.recovery_codes_regenerated") == 3  # the two above and the one before sign-in


def test_the_api_takes_bearer_tokens_whatever_the_teams_requirement(client, tenant):
    from tests.builders import make_token

    tenant.require_two_factor = True
    db.session.commit()
    response = client.get("/waha/sessions", headers={"Authorization": f"Bearer {make_token(tenant)}"})
    assert response.status_code == 200


def _passkey_row(user, name="Laptop"):
    row = WebAuthnCredential(user_id=user.id, credential_id=f"cred-{user.id}-{name}", public_key=b"k", name=name)
    db.session.add(row)
    db.session.commit()
    return row


def test_removing_a_passkey_needs_the_password_and_another_users_is_not_found(login, tenant, owner):
    row = _passkey_row(owner)
    viewer = member(tenant, "viewer")
    theirs = _passkey_row(viewer, "Phone")
    client = login(owner)  # through the second step, with a recovery code
    page = "/account/two-factor"
    assert "Laptop" in text(client.get(page))

    def remove(passkey_id, secret):
        return post(client, f"/account/two-factor/passkeys/{passkey_id}/delete", {"reauth": secret}, page=page)

    assert remove(row.id, "guess").status_code == 400
    assert remove(theirs.id, PASSWORD).status_code == 404
    assert remove(row.id, PASSWORD).status_code == 303
    assert not two_factor.has_factor(owner) and two_factor.has_factor(viewer)
    assert two_factor.recovery.remaining(owner) == 0  # the way back in without a factor would lead nowhere
    assert "user.passkey_removed" in set(db.session.scalars(select(AuditEvent.action)))


def test_single_sign_on_leads_a_user_with_a_factor_to_the_second_step(client, owner, request):
    idp = request.getfixturevalue("sso")  # the portal configured for the fake identity provider
    owner.email_verified_at = utcnow()
    db.session.commit()
    secret = give_second_factor(owner)
    claims = {"sub": "idp-1", "email": owner.email, "email_verified": True}

    response = _finish(client, idp, _start(client), claims)

    assert response.headers["Location"] == "/login/two-factor"
    assert client.get("/").status_code == 302
    assert _second(client, _code(secret)).headers["Location"] == "/"


def _json(client, path, body=None, page="/login"):
    from tests.helpers import csrf_token

    return client.post(path, json=body or {}, headers={"X-CSRFToken": csrf_token(client, page)})


def test_passkey_pages_register_a_passkey_that_then_signs_in_without_a_password(login, owner, app):
    from tests.soft_authenticator import SoftAuthenticator

    key = SoftAuthenticator("localhost", "http://localhost")  # the test client's host: the default relying party
    client = login(owner)
    options = _json(client, "/account/two-factor/passkeys/options", page="/account/two-factor")
    added = _json(
        client,
        "/account/two-factor/passkeys",
        {"credential": key.create(options.get_data(as_text=True)), "name": "Laptop"},
        page="/account/two-factor",
    )
    assert added.status_code == 200 and added.json == {"redirect": "/account/two-factor"}

    fresh = app.test_client()
    options = _json(fresh, "/login/passkey/options")
    signed_in = _json(
        fresh, "/login/passkey", {"credential": key.get(options.get_data(as_text=True)), "next": "/sessions/"}
    )

    assert signed_in.json == {"redirect": "/sessions/"}
    assert fresh.get("/sessions/").status_code == 200
    replayed = _json(fresh, "/login/passkey", {"credential": key.get(options.get_data(as_text=True))}, page="/")
    assert replayed.status_code == 400 and replayed.json["error"]["code"] == "passkey_challenge"


def test_the_relying_party_comes_from_the_settings_when_given(client, app, monkeypatch):
    import json

    assert json.loads(_json(client, "/login/passkey/options").get_data())["rpId"] == "localhost"
    monkeypatch.setitem(app.config, "WEBAUTHN_RP_ID", "portal.example.com")
    monkeypatch.setitem(app.config, "WEBAUTHN_ORIGIN", "https://portal.example.com")
    assert json.loads(_json(client, "/login/passkey/options").get_data())["rpId"] == "portal.example.com"


def test_a_browser_left_without_the_factor_enrolled_elsewhere_must_sign_in_again(client, tenant, app):
    tenant.require_two_factor = True
    db.session.commit()
    user = member(tenant, "operator")
    _password(client, user)
    other = app.test_client()
    _password(other, user)
    _enrol_totp(other)
    assert other.get("/sessions/").status_code == 200

    response = client.get("/sessions/")

    assert response.headers["Location"].startswith("/login")
    assert client.get("/account").headers["Location"].startswith("/login")
