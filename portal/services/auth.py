"""Password sign-in: throttled per (account, client address), the same work and answer for unknown addresses."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import update
from werkzeug.security import check_password_hash, generate_password_hash

from portal.extensions import db
from portal.models import User, utcnow
from portal.services import audit, signin_throttle
from portal.services.audit import Actor
from portal.services.errors import RateLimited, Unauthorized
from portal.services.tenants import get_user_by_email

BAD_CREDENTIALS = "That email and password do not match an account."


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Made with the current default method and cost, so checking against it takes as long as a real check.
    return generate_password_hash("no account has this password")


def _password_matches(user: User | None, password: str) -> bool:
    """Always one hash verification, whether or not the account exists or has a password: the time an
    answer takes must not tell which addresses have accounts."""
    if user is None or not user.password_hash:
        check_password_hash(_dummy_hash(), password)
        return False
    return user.check_password(password)


def _wait_message(seconds: int) -> str:
    if seconds < 60:
        when = f"{seconds} seconds" if seconds != 1 else "1 second"
    else:
        minutes = -(-seconds // 60)
        when = f"{minutes} minutes" if minutes != 1 else "1 minute"
    return f"Too many failed attempts. Try again in {when}, or reset your password."


def sign_in(email: str, password: str, actor: Actor) -> User:
    """The user these credentials belong to.

    Every attempt is counted for its (account, client address) pair before the password is checked; past the
    free attempts the pair must wait, longer each time (see signin_throttle). Unknown addresses go through the
    same steps and get the same answers."""
    email = (email or "").strip()[:254]
    user = get_user_by_email(email)
    key = signin_throttle.key_for(user, email, actor.ip)
    wait = signin_throttle.acquire(key)
    if wait:
        audit.record(
            None,
            "auth.login_throttled",
            actor,
            target_type="user" if user else None,
            target_id=user.id if user else None,
            details={"email": email, "retry_after": wait},
            commit=True,
        )
        raise RateLimited(_wait_message(wait), retry_after=wait)
    matches = _password_matches(user, password or "")
    if user is None or not matches or not user.is_active:
        if user is not None:
            # One statement, so parallel failures are all counted.
            db.session.execute(update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1))
        audit.record(
            None,
            "auth.login_failed",
            actor,
            target_type="user",
            target_id=user.id if user else None,
            details={"email": email},
            commit=True,
        )
        raise Unauthorized(BAD_CREDENTIALS)
    signin_throttle.clear(key)
    user.failed_logins = 0
    user.last_login_at = utcnow()
    audit.record(None, "auth.login", actor, target_type="user", target_id=user.id)
    db.session.commit()
    return user
