"""The audit log: who did what to which target, from where."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import literal, select, tuple_

from portal.extensions import db
from portal.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who acts, as the door (view, API, job) saw it; services receive it for the audit log."""

    type: str  # user / token / system / waha / anonymous
    id: str | None = None
    label: str | None = None
    ip: str | None = None
    request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


SYSTEM = Actor(type="system", label="system")


def record(
    tenant_id: int | None,
    action: str,
    actor: Actor,
    *,
    target_type: str | None = None,
    target_id: Any = None,
    details: dict[str, Any] | None = None,
    commit: bool = False,
) -> AuditEvent:
    """Append an audit event in the caller's transaction (commit=True to commit on its own)."""
    event = AuditEvent(
        tenant_id=tenant_id,
        action=action,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip=actor.ip,
        request_id=actor.request_id,
        details=details or {},
    )
    db.session.add(event)
    if commit:
        db.session.commit()
    return event


@dataclass
class AuditFilters:
    action: str | None = None
    actor: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_events(
    tenant_id: int, filters: AuditFilters, *, before_id: int | None = None, limit: int = 50
) -> list[AuditEvent]:
    """A page of a tenant's audit log, newest first; `before_id` is the keyset cursor."""
    stmt = filtered_events(tenant_id, filters)
    if before_id:
        stmt = stmt.where(_before(tenant_id, before_id))
    # (created_at, id) is the order of the (tenant, created_at, id) index: each page is one short range of it, as
    # deep as it goes. Ordered by id alone, a tenant's page would walk the whole table's primary key.
    stmt = stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
    return list(db.session.scalars(stmt))


def filtered_events(tenant_id: int, filters: AuditFilters, *columns: Any) -> Any:
    """The tenant's events that pass `filters` (whole events, or only `columns`), unordered: the log's pages and
    its CSV export read the same rows."""
    stmt = select(*columns).where(AuditEvent.tenant_id == tenant_id) if columns else AuditEvent.scoped(tenant_id)
    # the filters are plain text: % and _ match themselves, not any text
    if filters.action:
        stmt = stmt.where(AuditEvent.action.startswith(filters.action, autoescape=True))
    if filters.actor:
        stmt = stmt.where(AuditEvent.actor_label.icontains(filters.actor, autoescape=True))
    if filters.target_id:
        stmt = stmt.where(AuditEvent.target_id == filters.target_id)
    if filters.since:
        stmt = stmt.where(AuditEvent.created_at >= filters.since)
    if filters.until:
        stmt = stmt.where(AuditEvent.created_at < filters.until)
    return stmt


def _before(tenant_id: int, before_id: int) -> Any:
    """The keyset condition "older than the event `before_id`" (the cursor the page links carry)."""
    anchor = db.session.execute(
        select(AuditEvent.created_at).where(AuditEvent.id == before_id, AuditEvent.tenant_id == tenant_id)
    ).scalar()
    if anchor is None:  # not the tenant's (or gone): the ids below it, as the link meant
        return AuditEvent.id < before_id
    return tuple_(AuditEvent.created_at, AuditEvent.id) < tuple_(literal(anchor), literal(before_id))


def latest(tenant_id: int | None = None, action: str | None = None) -> AuditEvent | None:
    """The newest audit event, optionally of one tenant and action (handy for status pages and checks)."""
    stmt = select(AuditEvent)
    if tenant_id is not None:
        stmt = stmt.where(AuditEvent.tenant_id == tenant_id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return db.session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(1)).first()
