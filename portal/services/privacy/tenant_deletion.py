"""A tenant's deletion with a grace period: the owner asks; the tenant is deactivated at once (its members can no
longer work in it, its API tokens stop working, its WhatsApp sessions are stopped on WAHA) and shown as scheduled
for deletion on a date TENANT_DELETION_GRACE_DAYS away. Until then the owner or a platform admin may cancel.
Afterwards the upkeep job deletes everything: the WAHA sessions (through the sessions service, so in the workers'
lock order), the stored files, the exports and every row of the tenant. Each step is audited; the request, the
cancellation and the deletion also at the platform level (tenant None), which outlives the tenant."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import Membership, Tenant, TenantExport, User, WahaSession, utcnow
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid, NotFound, ServiceError

log = logging.getLogger(__name__)

DELETER = Actor(type="system", label="tenant deletion")


def _platform_audit(tenant: Tenant, action: str, actor: Actor, **details: object) -> None:
    audit.record(
        None, action, actor, target_type="tenant", target_id=tenant.id, details={"slug": tenant.slug, **details}
    )


def request_deletion(tenant: Tenant, actor: Actor, confirm_slug: str) -> Tenant:
    """Schedule the tenant's deletion (the caller checked the owner's permission); `confirm_slug` must repeat the
    tenant's slug. Deactivates it and stops its sessions on WAHA (a session WAHA cannot stop is logged; the
    deletion removes it later anyway)."""
    from portal.services.sessions import stop_session

    # the tenant as a row of this session: an API caller's tenant is the token cache's detached copy
    tenant = db.session.get_one(Tenant, tenant.id)
    if (confirm_slug or "").strip() != tenant.slug:
        raise Invalid.field("confirm", N_f("Type the tenant's id (%(slug)s) to confirm.", slug=tenant.slug))
    if tenant.deletion_scheduled_for is not None:
        raise Conflict(N_("The tenant is already scheduled for deletion."), code="deletion_scheduled")
    now = utcnow()
    when = now + timedelta(days=int(current_app.config["TENANT_DELETION_GRACE_DAYS"]))
    tenant.deletion_requested_at, tenant.deletion_scheduled_for = now, when
    tenant.deletion_requested_by, tenant.is_active = actor.label, False
    details = {"scheduled_for": when.isoformat()}
    audit.record(
        tenant.id, "tenant.deletion_request", actor, target_type="tenant", target_id=tenant.id, details=details
    )
    _platform_audit(tenant, "tenant.deletion_request", actor, **details)
    db.session.commit()
    session_ids = list(
        db.session.scalars(
            select(WahaSession.id).where(WahaSession.tenant_id == tenant.id, WahaSession.status != "STOPPED")
        )
    )
    for session_id in session_ids:
        try:
            stop_session(tenant, session_id, actor)
        except ServiceError as exc:
            log.warning("tenant %s deletion: session %s not stopped: %s", tenant.id, session_id, exc.code)
    return tenant


def cancel_deletion(tenant: Tenant, actor: Actor) -> Tenant:
    """Cancel a scheduled deletion during the grace period: the tenant is active again (its sessions stay stopped
    until someone starts them)."""
    if tenant.deletion_scheduled_for is None:
        raise Conflict(N_("The tenant is not scheduled for deletion."), code="deletion_not_scheduled")
    was = tenant.deletion_scheduled_for
    tenant.deletion_requested_at = tenant.deletion_scheduled_for = tenant.deletion_requested_by = None
    tenant.is_active = True
    details = {"was_scheduled_for": was.isoformat()}
    audit.record(tenant.id, "tenant.deletion_cancel", actor, target_type="tenant", target_id=tenant.id, details=details)
    _platform_audit(tenant, "tenant.deletion_cancel", actor, **details)
    db.session.commit()
    return tenant


def owned_tenant(user: User, tenant_id: int) -> Tenant:
    """A tenant the user owns (active or not: an owner cancels a deletion of an inactive tenant); else NotFound."""
    tenant = db.session.scalar(
        select(Tenant)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Tenant.id == tenant_id, Membership.user_id == user.id, Membership.role == "owner")
    )
    if tenant is None:
        raise NotFound(N_("No such tenant."), code="tenant_not_found")
    return tenant


def scheduled_for_owner(user: User) -> list[Tenant]:
    """The tenants this user owns that are scheduled for deletion."""
    return list(
        db.session.scalars(
            select(Tenant)
            .join(Membership, Membership.tenant_id == Tenant.id)
            .where(
                Membership.user_id == user.id, Membership.role == "owner", Tenant.deletion_scheduled_for.is_not(None)
            )
            .order_by(Tenant.name)
        )
    )


def purge_tenant(tenant: Tenant) -> dict[str, int]:
    """Delete the tenant and everything it holds now: its WAHA sessions (each through the sessions service), its
    stored files and exports, then its row (every table of the tenant follows by its foreign key)."""
    from portal.services.media_files import delete_files, tenant_keys
    from portal.services.sessions import delete_session

    tenant_id, slug = tenant.id, tenant.slug
    session_ids = list(db.session.scalars(select(WahaSession.id).where(WahaSession.tenant_id == tenant_id)))
    for session_id in session_ids:
        delete_session(tenant, session_id, DELETER)  # WAHA down: raises, and the next run tries again
    keys = tenant_keys(tenant_id)
    keys += [
        k for k in db.session.scalars(select(TenantExport.storage_key).where(TenantExport.tenant_id == tenant_id)) if k
    ]
    db.session.execute(delete(Tenant).where(Tenant.id == tenant_id).execution_options(synchronize_session=False))
    db.session.expunge(tenant)
    counts = {"sessions": len(session_ids), "files": 0}
    audit.record(
        None, "tenant.deleted", DELETER, target_type="tenant", target_id=tenant_id, details={"slug": slug, **counts}
    )
    db.session.commit()
    counts["files"] = delete_files(keys)
    return counts


def purge_due(now: datetime) -> list[int]:
    """Delete every tenant whose grace period is over; the ids deleted. A tenant that cannot be deleted yet (WAHA
    unreachable, rows busy) is logged and tried again on the next run."""
    due = list(
        db.session.scalars(
            select(Tenant).where(Tenant.deletion_scheduled_for.is_not(None), Tenant.deletion_scheduled_for <= now)
        )
    )
    deleted = []
    for tenant in due:
        tenant_id = tenant.id
        try:
            purge_tenant(tenant)
        except ServiceError as exc:
            db.session.rollback()
            log.warning("tenant %s could not be deleted yet: %s", tenant_id, exc.code)
            continue
        deleted.append(tenant_id)
    return deleted
