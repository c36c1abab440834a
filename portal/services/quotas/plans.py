"""The platform admin's plans and a tenant's plan and overrides (audited)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from portal.converters import parse_id
from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import LIMIT_COLUMNS, Plan, Tenant
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid, NotFound
from portal.services.quotas.limits import forget_plans

MAX_VALUE = 10**15  # bytes of storage reach far; anything beyond is a typo


def list_plans() -> list[Plan]:
    return list(db.session.scalars(select(Plan).order_by(Plan.name)))


def get_plan(plan_id: Any) -> Plan:
    """The plan `plan_id` names (an int, or its digits from a form); NotFound for anything else."""
    row_id = parse_id(plan_id.strip() if isinstance(plan_id, str) else plan_id)
    plan = db.session.get(Plan, row_id) if row_id is not None else None
    if plan is None:
        raise NotFound(N_("No such plan."), code="plan_not_found")
    return plan


def clean_limits(values: Mapping[str, Any]) -> dict[str, int | None]:
    """Each limit a whole number from 0 (None: the plan's value, or no limit on a plan); a form's text is read as
    its digits, and an empty field is None."""
    clean: dict[str, int | None] = {}
    for column in LIMIT_COLUMNS:
        value = values.get(column)
        if isinstance(value, str):
            value = value.strip()
            value = int(value) if value.isascii() and value.isdigit() and len(value) <= 16 else (value or None)
        if value is None:
            clean[column] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VALUE:
            raise Invalid.field(column, N_("A limit is a whole number from 0, or empty."))
        clean[column] = value
    return clean


def _name(name: Any) -> str:
    name = str(name or "").strip()
    if not name or len(name) > 100:
        raise Invalid.field("name", N_("A plan's name is 1 to 100 characters."))
    return name


def save_plan(
    plan_id: int | None, name: Any, values: Mapping[str, Any], actor: Actor, *, default: bool = False
) -> Plan:
    """Create (plan_id None) or change a plan; `default` makes it the plan of new tenants. Audited."""
    name = _name(name)
    limits = clean_limits(values)
    taken = db.session.scalar(select(Plan.id).where(Plan.name == name))
    if taken is not None and taken != plan_id:
        raise Conflict(N_f("A plan named “%(name)s” exists.", name=name), code="plan_exists")
    plan = get_plan(plan_id) if plan_id is not None else Plan(name=name, is_default=False)
    before = {c: getattr(plan, c) for c in LIMIT_COLUMNS} if plan_id is not None else {}
    plan.name = name
    for column, value in limits.items():
        setattr(plan, column, value)
    if default:
        for other in db.session.scalars(select(Plan).where(Plan.is_default.is_(True))):
            other.is_default = False
        plan.is_default = True
    if plan_id is None:
        db.session.add(plan)
    db.session.flush()
    audit.record(
        None,
        "plan.create" if plan_id is None else "plan.update",
        actor,
        target_type="plan",
        target_id=plan.id,
        details={"name": name, "limits": limits, "before": before, "default": plan.is_default},
    )
    db.session.commit()
    forget_plans()
    return plan


def set_tenant_plan(tenant: Tenant, plan_id: Any, overrides: Mapping[str, Any], actor: Actor) -> Tenant:
    """Put the tenant on a plan (None or "": no plan) with its own overrides (None = the plan's value). Audited
    as tenant.plan. A limit set below what is used stops new use; nothing is deleted."""
    plan = get_plan(plan_id) if plan_id not in (None, "") else None
    limits = clean_limits(overrides)
    before = {"plan_id": tenant.plan_id, **{c: getattr(tenant, c) for c in LIMIT_COLUMNS}}
    tenant.plan_id = plan.id if plan is not None else None
    for column, value in limits.items():
        setattr(tenant, column, value)
    after = {"plan_id": tenant.plan_id, **limits}
    changes = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    if changes:
        audit.record(tenant.id, "tenant.plan", actor, target_type="tenant", target_id=tenant.id, details=changes)
    db.session.commit()
    return tenant
