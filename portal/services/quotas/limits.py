"""A tenant's limits: its plan's, each overridden by the tenant's own column when set; the periods they count in.

Plans are read through a small per-process cache (a few seconds), so the send path looks a limit up without a
query; a plan changed in another process is seen within PLAN_CACHE_SECONDS.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import LIMIT_COLUMNS, Plan, Tenant, utcnow
from portal.services.errors import Conflict

PLAN_CACHE_SECONDS = 5.0
DEFAULT_PLAN_NAME = "Default"
DEFAULT_PLAN_LIMITS: dict[str, int | None] = {"max_sessions": 10}


@dataclass(frozen=True)
class Quota:
    name: str  # details.quota of the 409
    column: str  # the plan's and the tenant's column
    period: str | None  # "day", "month", "minute" or None (a standing amount)
    label: str


QUOTAS: tuple[Quota, ...] = (
    Quota("sessions", "max_sessions", None, N_("Sessions")),
    Quota("messages_per_day", "max_messages_per_day", "day", N_("Messages sent per day")),
    Quota("messages_per_month", "max_messages_per_month", "month", N_("Messages sent per month")),
    Quota(
        "campaign_recipients_per_month",
        "max_campaign_recipients_per_month",
        "month",
        N_("Campaign recipients per month"),
    ),
    Quota("media_storage", "max_media_bytes", None, N_("Media storage (bytes)")),
    Quota("api_requests_per_minute", "max_api_requests_per_minute", "minute", N_("API requests per minute")),
    Quota("team_seats", "max_team_seats", None, N_("Team seats")),
    Quota("webhook_endpoints", "max_webhook_endpoints", None, N_("Webhook endpoints")),
)
BY_NAME = {q.name: q for q in QUOTAS}
assert tuple(q.column for q in QUOTAS) == LIMIT_COLUMNS


class QuotaExceeded(Conflict):
    """409 quota_exceeded: details carry the quota, its limit, what is used and when it resets (None: never)."""

    code = "quota_exceeded"


def _text(quota: Quota, limit: int, used: int, resets: datetime | None) -> str:
    """The English refusal (the API's and the logs'); pages show it with translated(), label included."""
    if resets is None:
        return N_f(
            "Your plan allows %(limit)s (%(what)s) and %(used)s are in use. Free some up or ask your "
            "platform administrator for a larger plan.",
            limit=limit,
            what=N_f(quota.label),
            used=used,
        )
    return N_f(
        "Your plan's limit of %(limit)s (%(what)s) is reached (%(used)s used). It resets at %(when)s UTC.",
        limit=limit,
        what=N_f(quota.label),
        used=used,
        when=resets.strftime("%Y-%m-%d %H:%M"),
    )


def exceeded(name: str, limit: int, used: int, now: datetime | None = None) -> QuotaExceeded:
    """The one refusal of every quota."""
    quota = BY_NAME[name]
    resets = resets_at(quota.period, now or utcnow())
    return QuotaExceeded(
        _text(quota, limit, used, resets),
        details={
            "quota": name,
            "limit": limit,
            "used": used,
            "resetsAt": resets.isoformat() if resets is not None else None,
        },
    )


def resets_at(period: str | None, now: datetime) -> datetime | None:
    """When a periodic count starts again (UTC periods); None for a standing amount."""
    if period == "day":
        return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    if period == "month":
        return datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    if period == "minute":
        return now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return None


def day_key(day: date) -> str:
    return day.strftime("%Y%m%d")


def month_key(day: date) -> str:
    return day.strftime("%Y%m")


class _Plans:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[int, tuple[float, dict[str, int | None]]] = {}

    def get(self, plan_id: int) -> dict[str, int | None]:
        found = self.rows.get(plan_id)
        if found is not None and time.monotonic() - found[0] < PLAN_CACHE_SECONDS:
            return found[1]
        plan = db.session.get(Plan, plan_id)
        values = {c: getattr(plan, c) for c in LIMIT_COLUMNS} if plan is not None else {}
        with self.lock:
            self.rows[plan_id] = (time.monotonic(), values)
        return values

    def clear(self) -> None:
        with self.lock:
            self.rows.clear()


_plans = _Plans()


def forget_plans() -> None:
    """Read plans again at their next use (after a change; tests)."""
    _plans.clear()


def plan_values(plan_id: int | None) -> dict[str, int | None]:
    return _plans.get(plan_id) if plan_id is not None else {}


def limit_of(tenant: Tenant, name: str) -> int | None:
    """The tenant's limit of one quota: its override, else its plan's; None = no limit."""
    column = BY_NAME[name].column
    own = getattr(tenant, column, None)
    if own is not None:
        return int(own)
    value = plan_values(tenant.plan_id).get(column)
    return int(value) if value is not None else None


def limits_of(tenant: Tenant) -> dict[str, int | None]:
    """Every limit of the tenant by quota name."""
    return {q.name: limit_of(tenant, q.name) for q in QUOTAS}


def default_plan() -> Plan:
    """The plan new tenants get (made when there is none, e.g. a database built without the migrations)."""
    plan = db.session.scalar(select(Plan).where(Plan.is_default.is_(True)).order_by(Plan.id).limit(1))
    if plan is None:
        plan = db.session.scalar(select(Plan).where(Plan.name == DEFAULT_PLAN_NAME))
        if plan is None:
            plan = Plan(name=DEFAULT_PLAN_NAME, is_default=True, **DEFAULT_PLAN_LIMITS)
            db.session.add(plan)
        plan.is_default = True
        db.session.flush()
    return plan


def plan_name(tenant: Tenant) -> str | None:
    plan = db.session.get(Plan, tenant.plan_id) if tenant.plan_id is not None else None
    return plan.name if plan is not None else None


def describe(values: dict[str, Any]) -> dict[str, Any]:
    """The limits as the API names them (quota name -> value)."""
    return {q.name: values.get(q.column) for q in QUOTAS}
