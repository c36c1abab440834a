"""Two-factor sign-in: what a user has enrolled, the second step of a sign-in, and resetting a lost factor.

Factors: a TOTP app (totp.py), passkeys (passkeys.py) and single-use recovery codes (recovery.py) as the way
back in. A browser may be remembered for 30 days (remembered.py). The second step is throttled per account like
the password (signin_throttle's counter and waits), and every outcome lands in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, exists, func, select

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import Membership, RecoveryCode, Tenant, User, WebAuthnCredential, utcnow
from portal.services import audit, signin_throttle
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid, NotFound, RateLimited
from portal.services.two_factor import recovery, remembered, totp

WRONG_CODE = N_("That code is not right. Try the current code from your app, or a recovery code.")


@dataclass(frozen=True)
class Status:
    """What a user has enrolled."""

    totp: bool
    passkeys: int
    recovery_left: int

    @property
    def enabled(self) -> bool:
        return self.totp or self.passkeys > 0


def passkey_count(user: User) -> int:
    return int(db.session.scalar(select(func.count()).where(WebAuthnCredential.user_id == user.id)) or 0)


def status(user: User) -> Status:
    """The user's factors."""
    return Status(
        totp=user.totp_enabled_at is not None,
        passkeys=passkey_count(user),
        recovery_left=recovery.remaining(user),
    )


def has_factor(user: User) -> bool:
    """Whether the user signs in with a second factor."""
    if user.totp_enabled_at is not None:
        return True
    return bool(db.session.scalar(select(exists().where(WebAuthnCredential.user_id == user.id))))


def required_by_tenant(user: User) -> bool:
    """Whether a tenant the user belongs to requires two-factor sign-in of its members."""
    stmt = select(
        exists().where(
            Membership.user_id == user.id,
            Membership.tenant_id == Tenant.id,
            Tenant.require_two_factor.is_(True),
            Tenant.is_active.is_(True),
        )
    )
    return bool(db.session.scalar(stmt))


def _throttle_key(user: User) -> str:
    # Per account, whatever the address: the one guessing codes already has the password.
    return f"portal:2fa:u{user.id}.{user.credential_fingerprint}"


def _throttled(user: User, actor: Actor) -> None:
    wait = signin_throttle.acquire(_throttle_key(user))
    if wait:
        audit.record(
            None,
            "auth.second_factor_throttled",
            actor,
            target_type="user",
            target_id=user.id,
            details={"retry_after": wait},
            commit=True,
        )
        raise RateLimited(N_f("Too many wrong codes. Try again in %(wait)s seconds.", wait=wait), retry_after=wait)


def verify_code(user: User, code: str, actor: Actor) -> str:
    """Pass the second step with a TOTP code or a recovery code; returns which ("totp" / "recovery").

    Throttled like the password; a wrong (or reused) code is audited and refused with Invalid."""
    _throttled(user, actor)
    code = (code or "").strip()
    how = None
    if totp.accept(user, code):
        how = "totp"
    elif recovery.use(user, code):
        how = "recovery"
        audit.record(
            None,
            "auth.recovery_code_used",
            actor,
            target_type="user",
            target_id=user.id,
            details={"left": recovery.remaining(user)},
        )
    if how is None:
        db.session.rollback()
        audit.record(
            None, "auth.second_factor_failed", actor, target_type="user", target_id=user.id, details={"method": "code"}
        )
        db.session.commit()
        raise Invalid.field("code", WRONG_CODE)
    signin_throttle.clear(_throttle_key(user))
    db.session.commit()
    return how


def record_login(user: User, actor: Actor) -> None:
    """Record a sign-in with a passkey alone (no password: the passkey verified the person)."""
    user.failed_logins = 0
    user.last_login_at = utcnow()
    audit.record(None, "auth.login", actor, target_type="user", target_id=user.id, details={"method": "passkey"})
    db.session.commit()


def tidy_when_none_left(user: User) -> None:
    """With the last factor gone, remembered browsers and recovery codes mean nothing: drop them, so a new
    factor starts afresh (with new recovery codes)."""
    if not has_factor(user):
        remembered.revoke_all(user)
        db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        db.session.commit()


def forget_browsers(user: User) -> int:
    """Forget every remembered browser of the user (their password changed); how many."""
    count = remembered.revoke_all(user)
    db.session.commit()
    return count


def record_failure(user: User | None, method: str, reason: str, actor: Actor) -> None:
    """Audit a second step (or passkey sign-in) that failed."""
    audit.record(
        None,
        "auth.second_factor_failed",
        actor,
        target_type="user" if user else None,
        target_id=user.id if user else None,
        details={"method": method, "reason": reason[:200]},
        commit=True,
    )


def check_reauth(user: User, secret: str, actor: Actor) -> None:
    """The user proves it is them before turning a factor off: their password or a current code."""
    secret = (secret or "").strip()
    if secret and user.password_hash and user.check_password(secret):
        return
    if secret and user.totp_enabled_at is not None:
        _throttled(user, actor)
        if totp.accept(user, secret):
            signin_throttle.clear(_throttle_key(user))
            return
    record_failure(user, "reauth", "wrong password or code", actor)
    raise Invalid.field("reauth", N_("That is neither your password nor a current code."))


def refuse_if_last_required(user: User, *, removing: str) -> None:
    """Refuse to turn off the user's last factor while a tenant of theirs requires one."""
    st = status(user)
    left = (st.totp and removing != "totp") or st.passkeys - (1 if removing == "passkey" else 0) > 0
    if not left and required_by_tenant(user):
        raise Conflict(
            N_("A team you belong to requires two-factor sign-in: add another factor before removing this one."),
            code="two_factor_required",
        )


def reset(target: User, actor: Actor, *, tenant_id: int | None) -> None:
    """Remove every factor of `target` (TOTP, passkeys, recovery codes, remembered browsers): an owner's or a
    platform admin's answer to a lost phone. The caller checked who may; audited in the tenant's log."""
    before = status(target)
    target.totp_secret = None
    target.totp_enabled_at = None
    target.totp_last_step = None
    db.session.execute(delete(WebAuthnCredential).where(WebAuthnCredential.user_id == target.id))
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == target.id))
    forgotten = remembered.revoke_all(target)
    audit.record(
        tenant_id,
        "user.two_factor_reset",
        actor,
        target_type="user",
        target_id=target.id,
        details={
            "email": target.email,
            "totp": before.totp,
            "passkeys": before.passkeys,
            "recovery_codes": before.recovery_left,
            "remembered_browsers": forgotten,
        },
    )
    db.session.commit()


def member_for_reset(tenant: Tenant, user_id: int) -> User:
    """A member of `tenant` whose factors an owner may reset; NotFound for anyone else."""
    membership = db.session.scalar(
        select(Membership).where(Membership.tenant_id == tenant.id, Membership.user_id == user_id)
    )
    if membership is None:
        raise NotFound(N_("No such member."), code="member_not_found")
    return membership.user
