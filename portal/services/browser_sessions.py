"""Signed-in browsers, kept server-side: started at sign-in, checked on every request, revocable.

The cookies (Flask's `session` and Flask-Login's `remember_token`) carry a random secret of the browser's row;
the row stores only its sha256. Signing out revokes the row, so a copied cookie stops working at once. A
browser signed in without "remember me" is signed out after SESSION_IDLE_HOURS without a request; a remembered
one after REMEMBER_DAYS.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.orm import aliased

from portal.extensions import db
from portal.i18n import N_
from portal.models import BrowserSession, Membership, OutreachSettings, Tenant, User, rowcount, utcnow
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import NotFound

SESSION_IDLE_HOURS = 12
TOUCH_EVERY = timedelta(minutes=1)  # last use is written at most this often per browser
KEEP_ENDED_DAYS = 30  # ended sessions stay listed in the database this long (the audit log keeps the rest)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _lifetime(remember: bool) -> timedelta:
    if remember:
        return current_app.config.get("REMEMBER_COOKIE_DURATION") or timedelta(days=30)
    return timedelta(hours=SESSION_IDLE_HOURS)


def start(
    user: User,
    actor: Actor,
    *,
    remember: bool,
    user_agent: str = "",
    method: str = "password",
    second_factor: str | None = None,
    enrol_required: bool = False,
) -> str:
    """Open a server-side session for a browser that just signed in; returns the secret for its cookies.
    `second_factor` says how it passed the second step (services.two_factor), `enrol_required` that the user
    must enrol a factor before anything else."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = BrowserSession(
        user_id=user.id,
        token_hash=_digest(token),
        remember=remember,
        method=method,
        user_agent=(user_agent or "")[:300],
        ip=actor.ip,
        created_at=now,
        last_used_at=now,
        expires_at=now + _lifetime(remember),
        second_factor=second_factor,
        enrol_required=enrol_required,
    )
    db.session.add(row)
    db.session.commit()
    return token


@dataclass(frozen=True)
class SignedIn:
    """What one request's sign-in check found: the user, their usable browser session, and their membership of
    the tenant the browser works in (`role` and `tenant` None when they are not a member of it)."""

    user: User
    session_id: int
    remember: bool
    last_used_at: datetime
    tenant_id: int | None
    role: str | None
    tenant: Tenant | None
    memberships: int
    second_factor: str | None = None
    enrol_required: bool = False
    # the tenant's own time zone (its outreach settings; None when it never chose one): pages show times in it
    tenant_time_zone: str | None = None


_ALL_MEMBERSHIPS = aliased(Membership)
# Every signed-in request runs this: the user, the browser session its cookie opens, the membership and tenant it
# works in and how many tenants the user belongs to (the header's tenant switcher), in one round trip. Nothing of
# it is cached: a sign-out, a revoked browser or a changed role is seen by the very next request in any process.
_SIGNED_IN = (
    select(
        User,
        BrowserSession.id,
        BrowserSession.remember,
        BrowserSession.last_used_at,
        BrowserSession.expires_at,
        BrowserSession.revoked_at,
        BrowserSession.second_factor,
        BrowserSession.enrol_required,
        Membership.role,
        Tenant,
        select(func.count())
        .where(_ALL_MEMBERSHIPS.user_id == User.id)
        .correlate(User)
        .scalar_subquery()
        .label("memberships"),
        OutreachSettings.time_zone.label("tenant_time_zone"),
    )
    .join(
        BrowserSession,
        and_(BrowserSession.user_id == User.id, BrowserSession.token_hash == bindparam("token_hash")),
    )
    .outerjoin(Membership, and_(Membership.user_id == User.id, Membership.tenant_id == bindparam("tenant_id")))
    .outerjoin(Tenant, Tenant.id == Membership.tenant_id)
    .outerjoin(OutreachSettings, OutreachSettings.tenant_id == Tenant.id)
    .where(User.id == bindparam("user_id"))
)
_TOUCH = update(BrowserSession).where(BrowserSession.id == bindparam("session_id"))


def sign_in_check(user_id: int, token: str, tenant_id: int | None) -> SignedIn | None:
    """The user whose usable browser session `token` opens, with their membership of `tenant_id`; else None.
    Once the caller accepts it, `keep_alive` records the use."""
    if not token:
        return None
    row = db.session.execute(
        _SIGNED_IN, {"user_id": user_id, "token_hash": _digest(token), "tenant_id": tenant_id}
    ).first()
    if row is None or row.revoked_at is not None or not row.expires_at > utcnow():
        return None
    return SignedIn(
        user=row.User,
        session_id=row.id,
        remember=row.remember,
        last_used_at=row.last_used_at,
        tenant_id=tenant_id,
        role=row.role,
        tenant=row.Tenant,
        memberships=int(row.memberships or 0),
        second_factor=row.second_factor,
        enrol_required=bool(row.enrol_required),
        tenant_time_zone=row.tenant_time_zone,
    )


def keep_alive(found: SignedIn) -> None:
    """Bring the browser session's last use up to date, at most every TOUCH_EVERY; a browser signed in without
    "remember me" stays signed in for SESSION_IDLE_HOURS after it."""
    now = utcnow()
    if now - found.last_used_at < TOUCH_EVERY:
        return
    values = {"last_used_at": now} if found.remember else {"last_used_at": now, "expires_at": now + _lifetime(False)}
    db.session.execute(
        _TOUCH.values(**values), {"session_id": found.session_id}, execution_options={"synchronize_session": False}
    )
    db.session.commit()


def mark_second_factor(session_id: int, how: str) -> None:
    """Record that the browser session passed a second factor (it enrolled one just now)."""
    db.session.execute(
        update(BrowserSession).where(BrowserSession.id == session_id).values(second_factor=how, enrol_required=False),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()


def prune(now: datetime | None = None) -> int:
    """Delete browser sessions that ended (expired or signed out) more than KEEP_ENDED_DAYS ago; how many."""
    cutoff = (now or utcnow()) - timedelta(days=KEEP_ENDED_DAYS)
    result = db.session.execute(
        delete(BrowserSession).where((BrowserSession.expires_at < cutoff) | (BrowserSession.revoked_at < cutoff))
    )
    db.session.commit()
    return max(rowcount(result), 0)


def list_for(user: User) -> list[BrowserSession]:
    """The user's signed-in browsers, most recently used first."""
    stmt = (
        select(BrowserSession)
        .where(
            BrowserSession.user_id == user.id, BrowserSession.revoked_at.is_(None), BrowserSession.expires_at > utcnow()
        )
        .order_by(BrowserSession.last_used_at.desc(), BrowserSession.id.desc())
    )
    return list(db.session.scalars(stmt))


def is_remembered(user: User, session_id: int | None) -> bool:
    """Whether the user's browser session `session_id` was opened with "keep me signed in"."""
    row = db.session.get(BrowserSession, session_id) if session_id else None
    return bool(row is not None and row.user_id == user.id and row.remember)


def end(user: User, token: str | None, actor: Actor, *, tenant_id: int | None = None) -> None:
    """Sign out the browser that holds `token` (its own sign-out button)."""
    row = db.session.scalar(select(BrowserSession).where(BrowserSession.token_hash == _digest(token or "")))
    if row is not None and row.user_id == user.id and row.revoked_at is None:
        row.revoked_at = utcnow()
    audit.record(
        tenant_id,
        "auth.logout",
        actor,
        target_type="user",
        target_id=user.id,
        details={"browser_session_id": row.id if row is not None else None},
    )
    db.session.commit()


def revoke(user: User, session_id: int, actor: Actor) -> BrowserSession:
    """Sign out one of the user's browsers; NotFound for anyone else's."""
    row = db.session.scalar(
        select(BrowserSession).where(BrowserSession.id == session_id, BrowserSession.user_id == user.id)
    )
    if row is None:
        raise NotFound(N_("No such signed-in browser."), code="browser_session_not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(
            None,
            "auth.session_revoke",
            actor,
            target_type="user",
            target_id=user.id,
            details={"browser_session_id": row.id, "user_agent": row.user_agent[:120]},
        )
        db.session.commit()
    return row


def revoke_all(user: User, actor: Actor, *, keep_token: str | None = None) -> int:
    """Sign out every browser of the user (all but the one holding `keep_token`, when given); how many."""
    stmt = update(BrowserSession).where(BrowserSession.user_id == user.id, BrowserSession.revoked_at.is_(None))
    if keep_token:
        stmt = stmt.where(BrowserSession.token_hash != _digest(keep_token))
    count = rowcount(
        db.session.execute(stmt.values(revoked_at=utcnow()), execution_options={"synchronize_session": False})
    )
    audit.record(
        None,
        "auth.logout_everywhere",
        actor,
        target_type="user",
        target_id=user.id,
        details={"signed_out": count, "kept_this_browser": bool(keep_token)},
    )
    db.session.commit()
    return int(count or 0)
