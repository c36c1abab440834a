"""Tenant settings (pacing, retention, limits, read receipts) and the platform admin's view of all tenants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import Membership, Tenant, WahaSession
from portal.services import audit, retention
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid, NotFound

# Bounds people can reason about; beyond them a value is almost surely a typo.
LIMITS = {
    "send_rate_per_minute": (1, 600, "Messages per minute"),
    "retention_messages_days": (1, 3650, "Message retention"),
    "retention_events_days": (1, 365, "Event retention"),
    "retention_media_days": (1, 3650, "Media retention"),
    "max_sessions": (0, 10000, "Session limit"),
}
# Settings that are on or off.
FLAGS = {
    "read_receipts": "Read receipts",
    "require_two_factor": "Two-factor sign-in for every member",
}


def _check_range(field: str, value: Any) -> int:
    low, high, label = LIMITS[field]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Invalid.field(
            field, N_f("%(label)s must be a whole number from %(low)s to %(high)s.", label=label, low=low, high=high)
        )
    return value


def _check_flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid.field(field, N_f("%(FLAGS)s is either on or off.", FLAGS=FLAGS[field]))
    return value


def update_settings(
    tenant: Tenant, actor: Actor, **values: int | bool | None
) -> dict[str, tuple[int | bool, int | bool]]:
    """Change the tenant's pacing, retention, read receipts and (for platform admins, decided by the caller)
    session limit.

    Values left as None stay as they are. Returns the changes as {field: (before, after)}."""
    unknown = set(values) - set(LIMITS) - set(FLAGS)
    if unknown:
        raise Invalid(N_f("Unknown settings: %(value)s.", value=", ".join(sorted(unknown))))
    changes: dict[str, tuple[int | bool, int | bool]] = {}
    for field, value in values.items():
        if value is None:
            continue
        value = _check_flag(field, value) if field in FLAGS else _check_range(field, value)
        if field in retention.KINDS:
            retention.check_days(field, int(value))  # a tenant may only shorten the platform's retention
        before = getattr(tenant, field)
        if before != value:
            changes[field] = (before, value)
    for field, (_, after) in changes.items():
        setattr(tenant, field, after)
    if changes:
        audit.record(
            tenant.id,
            "tenant.settings_update",
            actor,
            target_type="tenant",
            target_id=tenant.id,
            details={field: {"from": before, "to": after} for field, (before, after) in changes.items()},
        )
        db.session.commit()
    return changes


@dataclass(frozen=True)
class TenantRow:
    tenant: Tenant
    members: int
    sessions: int
    session_limit: int | None = None


def list_tenants() -> list[TenantRow]:
    """Every tenant with its member and session counts, by name."""
    members = dict(
        db.session.execute(select(Membership.tenant_id, func.count(Membership.id)).group_by(Membership.tenant_id))
        .tuples()
        .all()
    )
    sessions = dict(
        db.session.execute(select(WahaSession.tenant_id, func.count(WahaSession.id)).group_by(WahaSession.tenant_id))
        .tuples()
        .all()
    )
    tenants = db.session.scalars(select(Tenant).order_by(Tenant.name, Tenant.id))
    from portal.services.quotas import limit_of

    return [TenantRow(t, members.get(t.id, 0), sessions.get(t.id, 0), limit_of(t, "sessions")) for t in tenants]


def get_tenant(tenant_id: int) -> Tenant:
    """One tenant by id, or NotFound."""
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(N_("No such tenant."), code="tenant_not_found")
    return tenant


def set_tenant_active(tenant_id: int, active: bool, actor: Actor) -> Tenant:
    """Deactivate a tenant (its members can no longer work in it) or bring it back."""
    tenant = get_tenant(tenant_id)
    if active and tenant.deletion_scheduled_for is not None:
        raise Conflict(
            N_("The tenant is scheduled for deletion; cancel the deletion to make it active again."),
            code="deletion_scheduled",
        )
    if tenant.is_active != active:
        tenant.is_active = active
        audit.record(
            tenant.id,
            "tenant.activate" if active else "tenant.deactivate",
            actor,
            target_type="tenant",
            target_id=tenant.id,
            details={"slug": tenant.slug},
        )
        db.session.commit()
    return tenant
