"""Time-based one-time codes (RFC 6238) from an authenticator app.

The secret is kept encrypted (EncryptedText). Enrolment stores a fresh secret that is off until a code from the
app confirms it. A code is good once: the last accepted time step is kept per user, and a code of that step or an
earlier one is refused, with one conditional UPDATE so two parallel uses of a code cannot both pass.
"""

from __future__ import annotations

import hmac
import time

import pyotp
from sqlalchemy import or_, update

from portal.extensions import db
from portal.i18n import N_
from portal.models import User, rowcount, utcnow
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid

DIGITS = 6
INTERVAL = 30
WINDOW = 1  # steps either side of now that still count (a clock a little off, a code typed late)


def start_enrolment(user: User) -> str:
    """A new secret for the user's app, stored but off until `confirm`; Conflict when TOTP is already on."""
    if user.totp_enabled_at is not None:
        raise Conflict(N_("An authenticator app is already set up. Turn it off first to set up another."))
    user.totp_secret = pyotp.random_base32()
    user.totp_last_step = None
    db.session.commit()
    return user.totp_secret


def provisioning_uri(user: User, issuer: str) -> str:
    """The otpauth:// URI of the user's (pending or enabled) secret, for the QR code."""
    return pyotp.TOTP(user.totp_secret or "").provisioning_uri(name=user.email, issuer_name=issuer)


def _matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    if not (len(code) == DIGITS and code.isascii() and code.isdigit()):
        return None
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    step = int((time.time() if now is None else now) // INTERVAL)
    found = None
    for candidate in range(step - WINDOW, step + WINDOW + 1):
        if hmac.compare_digest(otp.generate_otp(candidate), code):
            found = candidate
    return found


def accept(user: User, code: str, *, pending: bool = False) -> bool:
    """Whether `code` is a current code of the user's secret that was not used before; records its step.

    `pending` checks the secret of an enrolment not yet confirmed. The caller commits."""
    if not user.totp_secret or (user.totp_enabled_at is None) != pending:
        return False
    code = code.replace(" ", "")
    step = _matching_step(user.totp_secret, code)
    if step is None:
        return False
    result = db.session.execute(
        update(User)
        .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step),
        execution_options={"synchronize_session": False},
    )
    if rowcount(result) != 1:
        return False  # used already (here or in a parallel request)
    user.totp_last_step = step
    return True


def confirm(user: User, code: str, actor: Actor) -> list[str]:
    """Turn TOTP on with a code from the app; returns fresh recovery codes when the user has none left."""
    from portal.services.two_factor import recovery

    if user.totp_enabled_at is not None:
        raise Conflict(N_("An authenticator app is already set up."))
    if not user.totp_secret or not accept(user, code or "", pending=True):
        db.session.rollback()
        audit.record(
            None, "auth.second_factor_failed", actor, target_type="user", target_id=user.id,
            details={"method": "totp_enrol"}, commit=True,
        )  # fmt: skip
        raise Invalid.field("code", N_("That code does not match. Check the time on your phone and try the next code."))
    user.totp_enabled_at = utcnow()
    codes = recovery.generate(user) if recovery.remaining(user) == 0 else []
    audit.record(
        None, "user.totp_enabled", actor, target_type="user", target_id=user.id,
        details={"recovery_codes_issued": len(codes)},
    )  # fmt: skip
    db.session.commit()
    return codes


def disable(user: User, actor: Actor) -> None:
    """Turn TOTP off (the caller checked the re-authentication and the team's requirement)."""
    if user.totp_enabled_at is None:
        return
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    audit.record(None, "user.totp_disabled", actor, target_type="user", target_id=user.id)
    db.session.commit()
