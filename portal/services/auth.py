"""Password sign-in with throttling of failed attempts."""

from __future__ import annotations

from datetime import timedelta

from portal.extensions import db
from portal.models import User, utcnow
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import RateLimited, Unauthorized
from portal.services.tenants import get_user_by_email

MAX_FAILURES = 5
LOCK_MINUTES = 15
BAD_CREDENTIALS = "That email and password do not match an account."


def sign_in(email: str, password: str, actor: Actor) -> User:
    """The user these credentials belong to; failures are counted, audited and lock the account for a while."""
    user = get_user_by_email(email or "")
    now = utcnow()
    if user is not None and user.locked_until and user.locked_until > now:
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        audit.record(None, "auth.login_locked", actor, target_type="user", target_id=user.id, commit=True)
        raise RateLimited(f"Too many failed attempts. Try again in {minutes} minutes or reset your password.",
                          retry_after=minutes * 60)
    if user is None or not user.is_active or not user.check_password(password or ""):
        if user is not None:
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILURES:
                user.locked_until = now + timedelta(minutes=LOCK_MINUTES)
                user.failed_logins = 0
        audit.record(None, "auth.login_failed", actor, target_type="user",
                     target_id=user.id if user else None, details={"email": (email or "")[:254]}, commit=True)
        raise Unauthorized(BAD_CREDENTIALS)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit.record(None, "auth.login", actor, target_type="user", target_id=user.id)
    db.session.commit()
    return user
