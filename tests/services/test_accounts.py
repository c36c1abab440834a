"""Reset links (signed, expiring, single use) and matching OpenID Connect identities to users."""

from __future__ import annotations

import time

import pytest
from flask import current_app
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from portal.extensions import db
from portal.mail import outbox
from portal.models import AuditEvent, Membership, User, utcnow
from portal.services import accounts, auth, signin_throttle, team
from portal.services.audit import Actor
from portal.services.errors import Forbidden, Invalid, RateLimited, Unauthorized
from tests.builders import PASSWORD, TEST_ACTOR, make_user


def _token_made_ago(user: User, seconds: int) -> str:
    """A genuine reset token, signed as if `seconds` ago."""

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds

    serializer = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=accounts.RESET_SALT, signer=Earlier)
    return serializer.dumps({"uid": user.id, "fp": accounts._fingerprint(user)})


def test_reset_token_opens_its_users_reset(owner):
    assert accounts.user_for_reset_token(accounts.make_reset_token(owner)).id == owner.id


def test_reset_sets_the_new_password(owner):
    accounts.reset_password(accounts.make_reset_token(owner), "a-brand-new-password", TEST_ACTOR)
    assert owner.check_password("a-brand-new-password") and not owner.check_password(PASSWORD)


def test_reset_token_works_only_once(owner):
    token = accounts.make_reset_token(owner)
    accounts.reset_password(token, "a-brand-new-password", TEST_ACTOR)
    with pytest.raises(Invalid) as exc:
        accounts.reset_password(token, "another-new-password", TEST_ACTOR)
    assert exc.value.code == "reset_link_invalid"


def test_reset_token_stops_working_after_any_password_change(owner):
    token = accounts.make_reset_token(owner)
    owner.set_password("changed-elsewhere-123")
    db.session.commit()
    with pytest.raises(Invalid):
        accounts.user_for_reset_token(token)


def test_reset_token_expires_after_an_hour(owner):
    assert accounts.user_for_reset_token(_token_made_ago(owner, 59 * 60)).id == owner.id
    with pytest.raises(Invalid):
        accounts.user_for_reset_token(_token_made_ago(owner, 61 * 60))


def test_reset_token_signed_with_another_key_is_refused(owner):
    forged = URLSafeTimedSerializer("another-secret-key-of-enough-length-0123", salt=accounts.RESET_SALT).dumps(
        {"uid": owner.id, "fp": accounts._fingerprint(owner)}
    )
    with pytest.raises(Invalid):
        accounts.user_for_reset_token(forged)


def test_reset_refuses_a_short_password(owner):
    with pytest.raises(Invalid):
        accounts.reset_password(accounts.make_reset_token(owner), "short", TEST_ACTOR)
    assert owner.check_password(PASSWORD)


def test_reset_lifts_the_sign_in_throttle(owner):
    here = Actor(type="anonymous", ip="203.0.113.7")
    for _ in range(signin_throttle.FREE_ATTEMPTS):
        with pytest.raises(Unauthorized):
            auth.sign_in(owner.email, "not-the-password", here)
    with pytest.raises(RateLimited):
        auth.sign_in(owner.email, PASSWORD, here)
    accounts.reset_password(accounts.make_reset_token(owner), "a-brand-new-password", TEST_ACTOR)
    assert auth.sign_in(owner.email, "a-brand-new-password", here).id == owner.id


def test_reset_marks_the_address_verified(owner):
    assert owner.email_verified_at is None
    accounts.reset_password(accounts.make_reset_token(owner), "a-brand-new-password", TEST_ACTOR)
    assert owner.email_verified_at is not None


def test_reset_request_for_an_unknown_address_mails_nothing(ctx, run_jobs):
    outbox.clear()
    accounts.request_password_reset("nobody@example.com", TEST_ACTOR)
    run_jobs()
    assert outbox == []


def test_reset_request_mails_a_link_to_the_account(owner, run_jobs):
    outbox.clear()
    accounts.request_password_reset(owner.email.upper(), TEST_ACTOR)
    run_jobs()
    assert [mail.to for mail in outbox] == [owner.email]
    assert "/account/reset/" in outbox[0].body


def test_reset_requests_mail_at_most_once_a_minute(owner, run_jobs):
    outbox.clear()
    for _ in range(3):
        accounts.request_password_reset(owner.email, TEST_ACTOR)
    run_jobs()
    assert len(outbox) == 1


def test_reset_link_uses_the_configured_base_url(owner):
    url = accounts.public_url("account.reset_password", token="abc")
    assert url == current_app.config["PUBLIC_BASE_URL"] + "/account/reset/abc"


# -- OpenID Connect -----------------------------------------------------------------------------------------------


def test_oidc_matches_a_linked_subject(owner):
    owner.oidc_subject = "sub-1"
    db.session.commit()
    assert accounts.sign_in_oidc({"sub": "sub-1"}, TEST_ACTOR).id == owner.id


def test_oidc_links_a_verified_email_on_first_use(owner):
    owner.email_verified_at = utcnow()  # e.g. the owner used a mailed reset link once
    db.session.commit()
    user = accounts.sign_in_oidc({"sub": "sub-1", "email": owner.email, "email_verified": True}, TEST_ACTOR)
    assert user.id == owner.id and user.oidc_subject == "sub-1"


def test_oidc_links_an_account_without_a_password(ctx):
    user = make_user(None, email="sso@example.com")
    user.password_hash = None
    db.session.commit()
    linked = accounts.sign_in_oidc({"sub": "sub-5", "email": "sso@example.com", "email_verified": True}, TEST_ACTOR)
    assert linked.id == user.id and linked.email_verified_at is not None


def test_oidc_never_links_an_account_whose_address_was_never_proven(owner):
    # The password was set by someone else (here: the operator's `users create`); the address never confirmed.
    with pytest.raises(Forbidden) as refused:
        accounts.sign_in_oidc({"sub": "sub-1", "email": owner.email, "email_verified": True}, TEST_ACTOR)
    assert refused.value.code == "oidc_account_unverified"
    db.session.refresh(owner)
    assert owner.oidc_subject is None
    failed = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "auth.login_failed"))
    assert failed.details["reason"] == "address_unverified"


def test_oidc_refuses_an_unverified_email(owner):
    with pytest.raises(Forbidden):
        accounts.sign_in_oidc({"sub": "sub-1", "email": owner.email, "email_verified": False}, TEST_ACTOR)
    assert owner.oidc_subject is None


def test_oidc_refuses_an_email_linked_to_another_subject(owner):
    owner.oidc_subject = "sub-1"
    db.session.commit()
    with pytest.raises(Forbidden):
        accounts.sign_in_oidc({"sub": "sub-2", "email": owner.email, "email_verified": True}, TEST_ACTOR)


def test_oidc_refuses_an_uninvited_stranger(ctx):
    with pytest.raises(Forbidden):
        accounts.sign_in_oidc({"sub": "sub-9", "email": "stranger@example.com", "email_verified": True}, TEST_ACTOR)
    assert db.session.scalar(select(User).where(User.email == "stranger@example.com")) is None
    failed = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "auth.login_failed"))
    assert failed.details["method"] == "oidc"


def test_oidc_creates_an_invited_user_and_joins_the_tenant(tenant):
    team.invite_member(
        tenant, "invited@example.com", "viewer", TEST_ACTOR, actor_role="owner", accept_url=lambda token: token
    )
    user = accounts.sign_in_oidc(
        {"sub": "sub-3", "email": "Invited@Example.com", "email_verified": "true", "name": "Ivy"}, TEST_ACTOR
    )
    assert (user.email, user.name, user.oidc_subject, user.password_hash) == (
        "invited@example.com",
        "Ivy",
        "sub-3",
        None,
    )
    membership = db.session.scalar(select(Membership).where(Membership.user_id == user.id))
    assert (membership.tenant_id, membership.role) == (tenant.id, "viewer")
    assert team.list_invitations(tenant) == []
    assert user.email_verified_at is not None
    created = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.create"))
    assert (created.tenant_id, created.target_id) == (None, str(user.id))
    assert created.details == {"email": "invited@example.com", "via": "oidc"}


def test_oidc_refuses_a_disabled_account(ctx):
    user = make_user(None, email="off@example.com")
    user.is_active_user = False
    db.session.commit()
    with pytest.raises(Forbidden):
        accounts.sign_in_oidc({"sub": "s", "email": "off@example.com", "email_verified": True}, TEST_ACTOR)
