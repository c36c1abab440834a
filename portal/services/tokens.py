"""API tokens: random secrets, stored as sha256, shown once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update

from portal.dbengines import autocommit_active
from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import ApiToken, Tenant, get_for_tenant, utcnow
from portal.permissions import API_SCOPES, PERMISSIONS
from portal.services import audit, token_cache
from portal.services.audit import Actor
from portal.services.errors import Invalid, NotFound

TOKEN_PREFIX = "wp_"


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # the full bearer value; never stored, shown once


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    tenant: Tenant,
    name: str,
    scopes: list[str] | None,
    actor: Actor,
    *,
    expires_at: datetime | None = None,
    created_by_id: int | None = None,
) -> IssuedToken:
    """Issue a token with the given scopes (the API's own scopes when none given); returns the secret once."""
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid.field("name", N_("Name must be 1-100 characters."))
    scopes = sorted(set(scopes or API_SCOPES))
    unknown = [s for s in scopes if s not in PERMISSIONS]
    if unknown:
        raise Invalid.field(
            "scopes",
            N_f(
                "Unknown scopes: %(value)s. Known: %(value2)s.", value=", ".join(unknown), value2=", ".join(PERMISSIONS)
            ),
        )
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid.field("expires_at", N_("Expiry must be in the future."))
    prefix = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(
        tenant_id=tenant.id,
        name=name,
        prefix=prefix,
        secret_hash=_digest(secret),
        scopes=scopes,
        expires_at=expires_at,
        created_by_id=created_by_id,
    )
    db.session.add(token)
    db.session.flush()
    audit.record(
        tenant.id,
        "token.create",
        actor,
        target_type="token",
        target_id=token.id,
        details={
            "name": name,
            "scopes": scopes,
            "prefix": prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    db.session.commit()
    return IssuedToken(token=token, secret=secret)


# Every API call runs this lookup: built once, so SQLAlchemy does not walk a new statement for its cache key.
_TOKEN_WITH_TENANT = (
    select(ApiToken, Tenant)
    .join(Tenant, Tenant.id == ApiToken.tenant_id)
    .where(ApiToken.prefix == bindparam("prefix", type_=ApiToken.prefix.type))
)


def authenticate(secret: str) -> ApiToken | None:
    """The usable token this secret belongs to, or None (unknown, revoked, expired). Updates last use."""
    found = authenticate_with_tenant(secret)
    return found[0] if found is not None else None


def authenticate_with_tenant(secret: str) -> tuple[ApiToken, Tenant] | None:
    """Like `authenticate`, with the token's tenant read in the same query (one round trip per API call)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    prefix = secret[len(TOKEN_PREFIX) :].split("_", 1)[0]
    row = db.session.execute(_TOKEN_WITH_TENANT, {"prefix": prefix}).first()
    if row is None:
        return None
    token, tenant = row
    if not hmac.compare_digest(token.secret_hash, _digest(secret)):
        return None
    now = utcnow()
    if not token.is_usable(now):
        return None
    # Write last use at most once a minute: a busy integrator should not cost an UPDATE per call.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        token.last_used_at = now
        # The caller goes on with the token and its tenant: keep them loaded rather than read them again.
        session = db.session()
        keep, session.expire_on_commit = session.expire_on_commit, False
        try:
            session.commit()
        finally:
            session.expire_on_commit = keep
    return token, tenant


_TOUCH = (
    update(ApiToken)
    .where(ApiToken.id == bindparam("token_id", type_=ApiToken.id.type))
    .values(last_used_at=bindparam("now", type_=ApiToken.last_used_at.type))
)


def touch(entry: token_cache.Entry) -> None:
    """Record the use of a cached token, at most once a minute per process (as `authenticate_with_tenant`)."""
    now = utcnow()
    if entry.last_used_at is not None and (now - entry.last_used_at).total_seconds() <= 60:
        return
    entry.last_used_at = now
    session = db.session()
    # A Core statement on the request's connection: not an ORM change of the token, so no cache is dropped.
    session.connection().execute(_TOUCH, {"token_id": entry.token_id, "now": now})
    if not autocommit_active(session):
        keep, session.expire_on_commit = session.expire_on_commit, False
        try:
            session.commit()
        finally:
            session.expire_on_commit = keep


def failure_reason(secret: str) -> tuple[str, int | None]:
    """Why `secret` does not authenticate, and the tenant it names if any: for the audit log, never the caller."""
    prefix = secret[len(TOKEN_PREFIX) :].split("_", 1)[0] if secret.startswith(TOKEN_PREFIX) else ""
    token = db.session.scalar(select(ApiToken).where(ApiToken.prefix == prefix)) if prefix else None
    if token is None:
        return "token_unknown", None
    if not hmac.compare_digest(token.secret_hash, _digest(secret)):
        return "token_bad_secret", token.tenant_id
    if token.revoked_at is not None:
        return "token_revoked", token.tenant_id
    return "token_expired", token.tenant_id


def list_tokens(tenant: Tenant) -> list[ApiToken]:
    """The tenant's tokens, newest first (revoked ones included, for the record)."""
    return list(db.session.scalars(ApiToken.scoped(tenant.id).order_by(ApiToken.id.desc())))


def get_token(tenant: Tenant, token_id: Any) -> ApiToken:
    """One of the tenant's tokens; NotFound "token_not_found" otherwise (also for another tenant's)."""
    token = get_for_tenant(db.session, ApiToken, tenant.id, token_id)
    if token is None:
        raise NotFound(N_("No such API token."), code="token_not_found")
    return token


def _live_created_by(tenant: Tenant, user_id: int) -> Any:
    return ApiToken.scoped(tenant.id).where(ApiToken.created_by_id == user_id, ApiToken.revoked_at.is_(None))


def count_live_created_by(tenant: Tenant, user_id: int) -> int:
    """How many of the tenant's tokens that `user_id` made still work (expired ones included: they may not be
    the tenant's to judge)."""
    return db.session.scalar(_live_created_by(tenant, user_id).with_only_columns(func.count())) or 0


def revoke_created_by(tenant: Tenant, user_id: int, actor: Actor) -> list[ApiToken]:
    """Revoke every token of the tenant that `user_id` made: a member who leaves takes their API access with them.
    Each is audited as "token.revoke" (reason "member_removed"); the caller commits, and the commit tells every
    process's token cache (services.token_cache)."""
    revoked = list(db.session.scalars(_live_created_by(tenant, user_id)))
    for token in revoked:
        _revoke(token, actor, reason="member_removed")
    return revoked


def revoke_token(tenant: Tenant, token_id: int, actor: Actor) -> ApiToken:
    """Revoke a token of this tenant; revoking twice is harmless."""
    token = get_token(tenant, token_id)
    if token.revoked_at is None:
        _revoke(token, actor)
        db.session.commit()
    return token


def _revoke(token: ApiToken, actor: Actor, reason: str | None = None) -> None:
    """Mark the token revoked and audit it as "token.revoke", in the caller's transaction."""
    token.revoked_at = utcnow()
    details = {"name": token.name, "prefix": token.prefix}
    if reason:
        details["reason"] = reason
    audit.record(token.tenant_id, "token.revoke", actor, target_type="token", target_id=token.id, details=details)
