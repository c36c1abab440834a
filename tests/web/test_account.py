"""Account pages: password reset by mailed link, invitation acceptance, and single sign-on with OpenID Connect."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import select

from portal.extensions import db
from portal.mail import outbox
from portal.models import AuditEvent, Membership, User, utcnow
from portal.services import team
from portal.services.accounts import make_reset_token
from portal.services.tenants import set_membership
from tests.builders import PASSWORD, TEST_ACTOR, mailed_link, make_tenant, make_user
from tests.helpers import csrf_token, find, post, text
from tests.web.oidc_provider import CLIENT_ID, CLIENT_SECRET, FakeOidcProvider

NEW_PASSWORD = "a-new-and-long-password"


def _signed_in(client) -> bool:
    return client.get("/").status_code == 200


def _link_path(body: str, prefix: str) -> str:
    return urlsplit(find(r"(https?://\S+" + re.escape(prefix) + r"\S+)", body)).path


# -- Password reset -----------------------------------------------------------------------------------------------


def _ask_reset(client, email):
    return post(client, "/account/forgot", {"email": email}, page="/account/forgot")


def test_login_page_links_to_password_reset(client):
    assert 'href="/account/forgot"' in text(client.get("/login"))


def test_forgot_page_asks_for_the_address(client):
    response = client.get("/account/forgot")
    assert response.status_code == 200
    assert "Forgot your password?" in text(response)


def test_forgot_answers_the_same_for_known_and_unknown_addresses(client, owner, run_jobs):
    known = text(_ask_reset(client, owner.email)).replace(owner.email, "ADDRESS")
    unknown = text(_ask_reset(client, "nobody@acme.example.com")).replace("nobody@acme.example.com", "ADDRESS")
    strip = re.compile(r'value="[^"]+"|"X-CSRFToken": "[^"]+"')
    assert strip.sub("", known) == strip.sub("", unknown)
    assert "Check your mail" in known


def test_forgot_without_csrf_token_is_rejected(client, owner, run_jobs):
    response = client.post("/account/forgot", data={"email": owner.email})
    assert response.status_code == 400
    run_jobs()
    assert all(mail.to != owner.email for mail in outbox)


def test_reset_link_flow_end_to_end(client, owner, run_jobs):
    outbox.clear()
    _ask_reset(client, owner.email)
    run_jobs()
    assert [mail.to for mail in outbox] == [owner.email]
    path = _link_path(outbox[0].body, "/account/reset/")
    page = client.get(path)
    assert page.status_code == 200 and owner.email in text(page)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    response = client.post(
        path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": csrf_token(client, path)}
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert "Your password is changed" in text(client.get("/login"))
    token = csrf_token(client, "/login")
    signed = client.post("/login", data={"email": owner.email, "password": NEW_PASSWORD, "csrf_token": token})
    assert signed.status_code == 302 and _signed_in(client)


def test_reset_link_works_only_once(client, owner, run_jobs):
    outbox.clear()
    _ask_reset(client, owner.email)
    run_jobs()
    path = _link_path(outbox[0].body, "/account/reset/")
    client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": csrf_token(client, path)})
    again = client.get(path)
    assert again.status_code == 400
    assert "expired or was already used" in text(again)


def test_reset_with_a_forged_token_is_refused(client, owner):
    response = client.get("/account/reset/not-a-real-token")
    assert response.status_code == 400
    assert "Ask for a new link" in text(response)


def test_reset_with_different_passwords_says_so(client, owner):
    path = f"/account/reset/{make_reset_token(owner)}"
    response = client.post(
        path,
        data={"password": NEW_PASSWORD, "confirm": "something-else-entirely", "csrf_token": csrf_token(client, path)},
    )
    assert response.status_code == 400
    assert "The passwords differ" in text(response)
    db.session.refresh(owner)
    assert owner.check_password(PASSWORD)


def test_reset_without_csrf_token_is_rejected(client, owner):
    path = f"/account/reset/{make_reset_token(owner)}"
    response = client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 400
    db.session.refresh(owner)
    assert owner.check_password(PASSWORD)


# -- Invitations --------------------------------------------------------------------------------------------------


def _invitation(tenant, email="new@example.com", role="operator") -> str:
    team.invite_member(tenant, email, role, TEST_ACTOR, actor_role="owner", accept_url=lambda token: f"/invite/{token}")
    return mailed_link(email)


def test_invitation_page_offers_to_create_an_account(client, tenant):
    page = client.get(_invitation(tenant))
    assert page.status_code == 200
    body = text(page)
    assert "Join Acme" in body and "operator" in body and 'name="password"' in body


def test_accepting_an_invitation_creates_the_account_and_signs_in(client, tenant):
    path = _invitation(tenant, role="viewer")
    response = client.post(
        path,
        data={"name": "Nia", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": csrf_token(client, path)},
    )
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "new@example.com"))
    assert user.check_password(NEW_PASSWORD)
    assert db.session.scalar(select(Membership.role).where(Membership.user_id == user.id)) == "viewer"
    assert "Welcome to Acme" in text(client.get("/"))


def test_accepted_invitation_link_cannot_be_used_again(client, app, tenant):
    path = _invitation(tenant)
    client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": csrf_token(client, path)})
    again = app.test_client().get(path)
    assert again.status_code == 404
    assert "already accepted" in text(again)


def test_invitation_for_an_existing_account_asks_to_sign_in(client, tenant):
    make_user(None, email="known@example.com")
    path = _invitation(tenant, email="known@example.com")
    body = text(client.get(path))
    assert "Sign in to accept" in body and 'name="password"' not in body


def test_signed_in_invitee_joins_with_one_click(login, tenant):
    user = make_user(make_tenant("other"), "owner", email="known@example.com")
    path = _invitation(tenant, email="known@example.com", role="admin")
    client = login(user)
    response = post(client, path, page=path)
    assert response.status_code == 302
    roles = {m.tenant_id: m.role for m in db.session.scalars(select(Membership).where(Membership.user_id == user.id))}
    assert roles[tenant.id] == "admin"
    with client.session_transaction() as session:
        assert session["tenant_id"] == tenant.id


def test_invitation_for_someone_else_is_refused_to_a_signed_in_user(login, tenant, owner):
    path = _invitation(tenant, email="someone@example.com")
    client = login(owner)
    assert "sign out, then open the link again" in text(client.get(path))
    response = post(client, path, page=path)
    assert response.status_code == 403
    assert team.list_invitations(tenant)


def test_unknown_invitation_link_is_not_found(client):
    response = client.get("/invite/made-up-token")
    assert response.status_code == 404
    assert "not valid" in text(response)


def test_invitation_accept_without_csrf_token_is_rejected(client, tenant):
    path = _invitation(tenant)
    response = client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 400
    assert db.session.scalar(select(User).where(User.email == "new@example.com")) is None


# -- Single sign-on -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider():
    server = FakeOidcProvider().start()
    yield server
    server.stop()


@pytest.fixture
def sso(app, provider, monkeypatch):
    """The portal configured for the fake provider."""
    monkeypatch.setitem(app.config, "OIDC_ISSUER", provider.issuer)
    monkeypatch.setitem(app.config, "OIDC_CLIENT_ID", CLIENT_ID)
    monkeypatch.setitem(app.config, "OIDC_CLIENT_SECRET", CLIENT_SECRET)
    return provider


def _start(client, path="/login/oidc"):
    response = client.get(path)
    assert response.status_code == 302
    return response.headers["Location"]


def _finish(client, provider, authorize_url, claims, **kwargs):
    code = provider.issue_code(authorize_url, claims, **kwargs)
    params = parse_qs(urlsplit(authorize_url).query)
    callback = urlsplit(params["redirect_uri"][0]).path
    return client.get(callback, query_string={"code": code, "state": params["state"][0]})


def test_login_page_offers_single_sign_on_only_when_configured(client, app, provider, monkeypatch):
    assert "single sign-on" not in text(client.get("/login"))
    monkeypatch.setitem(app.config, "OIDC_ISSUER", provider.issuer)
    monkeypatch.setitem(app.config, "OIDC_CLIENT_ID", CLIENT_ID)
    monkeypatch.setitem(app.config, "OIDC_CLIENT_SECRET", CLIENT_SECRET)
    assert 'href="/login/oidc"' in text(client.get("/login"))


def test_oidc_login_is_not_found_when_not_configured(client):
    assert client.get("/login/oidc").status_code == 404


def test_oidc_login_redirects_with_state_nonce_and_pkce(client, sso):
    location = _start(client)
    params = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{sso.issuer}/authorize")
    assert params["scope"] == ["openid email profile"]
    assert params["state"] and params["nonce"] and params["code_challenge_method"] == ["S256"]


@pytest.fixture
def verified_owner(owner):
    """The owner after proving the address (a mailed link was used)."""
    owner.email_verified_at = utcnow()
    db.session.commit()
    return owner


def test_oidc_signs_in_a_user_with_a_verified_email(client, sso, verified_owner):
    owner = verified_owner
    response = _finish(client, sso, _start(client), {"sub": "idp-1", "email": owner.email, "email_verified": True})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert _signed_in(client)
    db.session.refresh(owner)
    assert owner.oidc_subject == "idp-1"


def test_oidc_returns_to_the_page_asked_for(client, sso, verified_owner):
    owner = verified_owner
    authorize = _start(client, "/login/oidc?next=/admin/team/")
    response = _finish(client, sso, authorize, {"sub": "idp-1", "email": owner.email, "email_verified": True})
    assert response.headers["Location"] == "/admin/team/"


def test_oidc_refuses_an_uninvited_person(client, sso, tenant):
    response = _finish(client, sso, _start(client), {"sub": "idp-9", "email": "x@example.com", "email_verified": True})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert "Ask an admin of your team to invite you" in text(client.get("/login"))
    assert not _signed_in(client)


def test_oidc_signs_in_an_invited_person_into_the_tenant(client, sso, tenant):
    _invitation(tenant, email="guest@example.com", role="viewer")
    _finish(client, sso, _start(client), {"sub": "idp-5", "email": "guest@example.com", "email_verified": True})
    assert _signed_in(client)
    user = db.session.scalar(select(User).where(User.email == "guest@example.com"))
    assert db.session.scalar(select(Membership.role).where(Membership.user_id == user.id)) == "viewer"


def test_oidc_refuses_a_token_signed_by_another_key(client, sso, owner):
    stranger_key = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
    response = _finish(
        client,
        sso,
        _start(client),
        {"sub": "idp-1", "email": owner.email, "email_verified": True},
        signing_key=stranger_key,
    )
    assert response.headers["Location"].endswith("/login")
    assert "Single sign-on did not complete" in text(client.get("/login"))
    assert not _signed_in(client)
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "auth.login_failed")) is not None


def test_oidc_refuses_a_replayed_nonce(client, sso, owner):
    response = _finish(
        client,
        sso,
        _start(client),
        {"sub": "idp-1", "email": owner.email, "email_verified": True},
        nonce="another-nonce",
    )
    assert response.headers["Location"].endswith("/login")
    assert not _signed_in(client)


def test_oidc_callback_without_a_started_sign_in_is_refused(client, sso):
    response = client.get("/login/oidc/callback", query_string={"code": "x", "state": "forged"})
    assert response.headers["Location"].endswith("/login")
    assert not _signed_in(client)


# -- Sign-in extras around the form -------------------------------------------------------------------------------


def test_sign_in_from_an_invitation_returns_to_it(client, tenant):
    user = make_user(None, email="known@example.com")
    path = _invitation(tenant, email="known@example.com")
    login_url = find(r'href="(/login\?next=[^"]+)"', text(client.get(path)))
    page = text(client.get(login_url.replace("&amp;", "&")))
    assert f'name="next" value="{path}"' in page
    response = client.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "next": path, "csrf_token": csrf_token(client, "/login")},
    )
    assert response.headers["Location"] == path


def test_remember_me_keeps_a_long_lived_cookie(client, owner):
    response = client.post(
        "/login",
        data={"email": owner.email, "password": PASSWORD, "remember": "y", "csrf_token": csrf_token(client, "/login")},
    )
    assert "remember_token=" in " ".join(response.headers.getlist("Set-Cookie"))


def test_tenant_switcher_moves_between_tenants(login, tenant, owner):
    other = make_tenant("globex", name="Globex")
    make_user(other, "viewer", email="only-in-globex@example.com")
    set_membership(other, owner, "admin", TEST_ACTOR)
    client = login(owner)
    page = text(client.get("/admin/team/"))
    assert 'id="tenant-switch"' in page and "only-in-globex@example.com" not in page
    response = post(client, "/switch-tenant", {"tenant_id": str(other.id)})
    assert response.status_code == 302
    assert "only-in-globex@example.com" in text(client.get("/admin/team/"))


def test_oidc_only_user_sees_and_signs_out_their_browsers(app, sso, tenant):
    team.invite_member(
        tenant,
        "sso-only@example.com",
        "viewer",
        TEST_ACTOR,
        actor_role="owner",
        accept_url=lambda token: f"/invite/{token}",
    )
    laptop, phone = app.test_client(), app.test_client()
    for browser in (laptop, phone):
        _finish(
            browser, sso, _start(browser), {"sub": "idp-7", "email": "sso-only@example.com", "email_verified": True}
        )
        assert _signed_in(browser)
    page = text(laptop.get("/account"))
    assert "You sign in with single sign-on and have no password here" in page
    assert page.count("Sign out<span") == 2
    response = post(laptop, "/account/browsers/sign-out-everywhere", page="/account")
    assert response.headers["Location"] == "/login"
    assert not _signed_in(laptop) and not _signed_in(phone)


def test_oidc_refuses_to_link_an_account_whose_password_someone_else_set(client, sso, owner):
    response = _finish(client, sso, _start(client), {"sub": "idp-1", "email": owner.email, "email_verified": True})
    assert response.headers["Location"] == "/login"
    assert "the address was never confirmed" in text(client.get("/login"))
    assert not _signed_in(client)
    db.session.refresh(owner)
    assert owner.oidc_subject is None
