"""Tenants, users and memberships."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import Membership, Tenant, User
from portal.permissions import ROLES
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid, NotFound

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def normalize_email(email: str) -> str:
    """Lower-cased, syntax-checked address (no DNS lookup)."""
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise Invalid.field("email", str(exc)) from None


def check_password_strength(password: str, email: str = "") -> None:
    """Refuse passwords that the policy refuses (services/passwords.py)."""
    from portal.services.passwords import check_password_policy

    check_password_policy(password, email=email)


def create_tenant(
    slug: str, name: str, actor: Actor, *, max_sessions: int | None = None, send_rate_per_minute: int = 30
) -> Tenant:
    """Create a tenant with a unique slug, on the default plan (`max_sessions` overrides its session limit)."""
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise Invalid.field(
            "slug", N_("Slug must be 1-63 lowercase letters, digits or dashes, not starting or ending with a dash.")
        )
    if not name.strip():
        raise Invalid.field("name", N_("Name must not be empty."))
    if db.session.scalar(select(Tenant.id).where(Tenant.slug == slug)):
        raise Conflict(N_f("A tenant with slug '%(slug)s' already exists.", slug=slug), code="tenant_exists")
    from portal.services.quotas import default_plan

    tenant = Tenant(
        slug=slug,
        name=name.strip(),
        max_sessions=max_sessions,
        send_rate_per_minute=send_rate_per_minute,
        plan_id=default_plan().id,
    )
    db.session.add(tenant)
    db.session.flush()
    audit.record(tenant.id, "tenant.create", actor, target_type="tenant", target_id=tenant.id, details={"slug": slug})
    db.session.commit()
    return tenant


def get_tenant_by_slug(slug: str) -> Tenant:
    """The tenant with this slug, or NotFound."""
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug.strip().lower()))
    if tenant is None:
        raise NotFound(N_f("No tenant with slug '%(slug)s'.", slug=slug), code="tenant_not_found")
    return tenant


def get_user_by_email(email: str) -> User | None:
    """The user with this address, if any."""
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def create_user(
    email: str, password: str | None, actor: Actor, *, name: str = "", is_platform_admin: bool = False
) -> User:
    """Create a user; the address must be new."""
    email = normalize_email(email)
    if password is not None:
        check_password_strength(password, email)
    if get_user_by_email(email):
        raise Conflict(N_f("A user with email '%(email)s' already exists.", email=email), code="user_exists")
    user = User(email=email, name=name, is_platform_admin=is_platform_admin)
    if password is not None:
        user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit.record(None, "user.create", actor, target_type="user", target_id=user.id, details={"email": email})
    db.session.commit()
    return user


def set_membership(tenant: Tenant, user: User, role: str, actor: Actor) -> Membership:
    """Give `user` the `role` in `tenant` (adding or changing the membership)."""
    if role not in ROLES:
        raise Invalid.field("role", N_f("Role must be one of %(value)s.", value=", ".join(ROLES)))
    membership = db.session.scalar(
        select(Membership).where(Membership.tenant_id == tenant.id, Membership.user_id == user.id)
    )
    action = "member.role_change" if membership else "member.add"
    if membership is None:
        membership = Membership(tenant_id=tenant.id, user_id=user.id, role=role)
        db.session.add(membership)
    else:
        membership.role = role
    audit.record(
        tenant.id, action, actor, target_type="user", target_id=user.id, details={"email": user.email, "role": role}
    )
    db.session.commit()
    return membership


def membership_for(user_id: int, tenant_id: int) -> Membership | None:
    """The user's membership in the tenant, if any."""
    return db.session.scalar(select(Membership).where(Membership.user_id == user_id, Membership.tenant_id == tenant_id))


def memberships_of(user: User) -> list[Membership]:
    """The user's memberships, tenants by name."""
    stmt = (
        select(Membership)
        .join(Tenant)
        .where(Membership.user_id == user.id, Tenant.is_active.is_(True))
        .order_by(Tenant.name)
    )
    return list(db.session.scalars(stmt))
