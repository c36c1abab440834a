"""Account flows outside the password form: reset links and OpenID Connect sign-in.

Reset links are signed with SECRET_KEY (itsdangerous), expire after an hour and carry a fingerprint of the
current password hash, so a link stops working as soon as it has been used (or the password changed otherwise).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import force_locale
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from portal.extensions import db, redis_store
from portal.i18n import DEFAULT_LOCALE, N_
from portal.i18n import gettext as _
from portal.mail import send_mail
from portal.models import User, utcnow
from portal.queue import JOB_SEND_PASSWORD_RESET, QUEUE_MAINTENANCE, enqueue
from portal.services import audit, team, two_factor
from portal.services.audit import Actor
from portal.services.errors import Forbidden, Invalid, Unauthorized
from portal.services.tenants import check_password_strength, get_user_by_email

log = logging.getLogger(__name__)

RESET_SALT = "portal.password-reset"
RESET_MAX_AGE = 3600  # seconds a reset link stays valid
RESET_MAIL_INTERVAL = 60  # at most one reset mail per account per minute
RESET_LINK_INVALID = "This reset link has expired or was already used. Ask for a new one below."
UNVERIFIED_ACCOUNT = (
    "An account with this address exists, but the address was never confirmed, so single "
    'sign-on cannot use it yet. Confirm it with "Forgot your password?" (we mail you a '
    "link), then use single sign-on."
)


def public_url(endpoint: str, **values: Any) -> str:
    """An absolute link to a portal page under PUBLIC_BASE_URL.

    Links that go out by mail are built from configuration, never from the request's Host header, which a
    caller controls."""
    base = urlsplit(current_app.config["PUBLIC_BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)
    return adapter.build(endpoint, values, force_external=True)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=RESET_SALT)


def _fingerprint(user: User) -> str:
    # The hash is salted, so it changes on every password change, even to the same password.
    return hashlib.sha256(f"{user.id}:{user.password_hash or ''}".encode()).hexdigest()[:20]


def make_reset_token(user: User) -> str:
    """A signed, expiring, single-use reset token for `user`."""
    return _serializer().dumps({"uid": user.id, "fp": _fingerprint(user)})


def user_for_reset_token(token: str, *, lock: bool = False) -> User:
    """The user a reset token belongs to; Invalid when it is forged, expired or already used."""
    try:
        data = _serializer().loads(token, max_age=RESET_MAX_AGE)
    except (SignatureExpired, BadSignature):
        raise Invalid(RESET_LINK_INVALID, code="reset_link_invalid") from None
    user_id = data.get("uid") if isinstance(data, dict) else None
    user = db.session.get(User, user_id, with_for_update=lock) if isinstance(user_id, int) else None
    if user is None or not user.is_active or data.get("fp") != _fingerprint(user):
        raise Invalid(RESET_LINK_INVALID, code="reset_link_invalid")
    return user


def request_password_reset(email: str, actor: Actor) -> None:
    """Queue a reset mail when the address belongs to an active account; silent otherwise.

    The caller answers the same way in both cases, and the mail goes out from a job so the answer takes the
    same time too: nobody learns which addresses have accounts."""
    user = get_user_by_email(email or "")
    if user is None or not user.is_active:
        audit.record(
            None,
            "auth.password_reset_request",
            actor,
            details={"email": (email or "")[:254], "known": False},
            commit=True,
        )
        return
    audit.record(
        None,
        "auth.password_reset_request",
        actor,
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "known": True},
        commit=True,
    )
    # One mail a minute per account: the form must not become a way to flood someone's inbox.
    if redis_store.client.set(f"portal:reset-mail:{user.id}", 1, nx=True, ex=RESET_MAIL_INTERVAL):
        enqueue(JOB_SEND_PASSWORD_RESET, user.id, queue=QUEUE_MAINTENANCE)


def send_password_reset(user_id: int) -> bool:
    """Mail a fresh reset link to the user; False when the account is gone or disabled."""
    user = db.session.get(User, user_id)
    if user is None or not user.is_active:
        return False
    url = public_url("account.reset_password", token=make_reset_token(user))
    minutes = RESET_MAX_AGE // 60
    with force_locale(user.language or DEFAULT_LOCALE):  # the mail in the user's language
        body = _(
            "Someone asked to reset the password of your WAHA Portal account.\n\n"
            "Choose a new password here (the link works once and expires in %(minutes)s minutes):\n%(url)s\n\n"
            "If it was not you, ignore this mail: your password stays as it is.",
            minutes=minutes,
            url=url,
        )
        subject = _("Reset your WAHA Portal password")
    send_mail(user.email, subject, body)
    return True


def reset_password(token: str, password: str, actor: Actor) -> User:
    """Set a new password through a reset link; the link is spent, and with the new password every sign-in
    throttle of the account starts afresh (the throttle is keyed by the password's fingerprint)."""
    user = user_for_reset_token(token, lock=True)
    check_password_strength(password or "", user.email)
    user.set_password(password)
    user.failed_logins = 0
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()  # the link went to this address: whoever used it reads that mailbox
    audit.record(
        None, "auth.password_reset", actor, target_type="user", target_id=user.id, details={"email": user.email}
    )
    db.session.commit()
    two_factor.forget_browsers(user)  # a remembered browser skips the second step no longer
    return user


def change_password(user: User, current: str, password: str, actor: Actor) -> User:
    """Change a signed-in user's password; the current one must be given. Every signed-in browser of the
    account is signed out (the caller signs the one that asked in again)."""
    from portal.services import browser_sessions

    if not user.password_hash:
        raise Invalid.field(
            "current_password",
            N_(
                "Your account has no password yet (you sign in with single "
                'sign-on). Use "Forgot your password?" to choose one.'
            ),
        )
    if not user.check_password(current or ""):
        audit.record(None, "auth.password_change_failed", actor, target_type="user", target_id=user.id, commit=True)
        raise Invalid.field("current_password", N_("That is not your current password."))
    check_password_strength(password or "", user.email)
    user.set_password(password)
    audit.record(
        None, "auth.password_change", actor, target_type="user", target_id=user.id, details={"email": user.email}
    )
    db.session.commit()
    browser_sessions.revoke_all(user, actor)
    two_factor.forget_browsers(user)
    return user


def _email_verified(claims: Mapping[str, Any]) -> bool:
    # Some providers send the flag as a string.
    return claims.get("email_verified") in (True, "true", "True")


def sign_in_oidc(claims: Mapping[str, Any], actor: Actor) -> User:
    """The user an OpenID Connect identity belongs to.

    Matched by subject first, then by verified email (linking the subject on first use). A link needs the
    account's own address to be proven too when it has a password: that password may have been set by someone
    else (an operator, an inviter), and linking would hand their account to the identity provider's user, or
    theirs to ours. An unknown person is refused unless an invitation to their verified address is pending;
    then the account is made and the invitations accepted."""
    subject = str(claims.get("sub") or "")
    email = str(claims.get("email") or "").strip().lower()
    if not subject:
        raise Unauthorized(N_("The identity provider did not say who you are."), code="oidc_no_subject")
    user = db.session.scalar(select(User).where(User.oidc_subject == subject))
    if user is None and email and _email_verified(claims):
        user = get_user_by_email(email)
        if user is not None:
            if user.oidc_subject and user.oidc_subject != subject:
                _refuse(actor, email, "subject_mismatch")
            if user.password_hash and user.email_verified_at is None:
                _refuse(actor, email, "address_unverified", UNVERIFIED_ACCOUNT)
            user.oidc_subject = subject
            user.email_verified_at = user.email_verified_at or utcnow()
            audit.record(
                None, "user.oidc_link", actor, target_type="user", target_id=user.id, details={"email": user.email}
            )
        else:
            invitations = team.pending_invitations_for(email)
            if invitations:
                name = str(claims.get("name") or "")
                user = team.create_invited_user(email, name, actor, via="oidc", oidc_subject=subject)
                for invitation in invitations:
                    team.join(invitation, user, actor)
    if user is None:
        _refuse(actor, email, "unknown")
    assert user is not None
    if not user.is_active:
        _refuse(actor, email, "inactive")
    user.failed_logins = 0
    user.last_login_at = utcnow()
    audit.record(None, "auth.login", actor, target_type="user", target_id=user.id, details={"method": "oidc"})
    db.session.commit()
    return user


def record_oidc_failure(reason: str, actor: Actor) -> None:
    """Audit a single sign-on that the provider or the ID token check refused."""
    audit.record(None, "auth.login_failed", actor, details={"method": "oidc", "reason": reason[:200]}, commit=True)


def _refuse(actor: Actor, email: str, reason: str, message: str | None = None) -> None:
    db.session.rollback()
    audit.record(
        None,
        "auth.login_failed",
        actor,
        details={"email": email[:254], "method": "oidc", "reason": reason},
        commit=True,
    )
    if message:
        raise Forbidden(message, code="oidc_account_unverified")
    raise Forbidden(
        N_("There is no portal account for this sign-in. Ask an admin of your team to invite you."),
        code="oidc_unknown_user",
    )
