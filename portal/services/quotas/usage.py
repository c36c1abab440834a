"""What a tenant used against each limit: this month's summary, a per-day chart, per session, and the
platform's table across tenants (with its CSV)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import QuotaUsage, Tenant, WahaSession, WebhookEndpoint, utcnow
from portal.services.quotas import counters
from portal.services.quotas.enforce import seats_used
from portal.services.quotas.limits import QUOTAS, limits_of, plan_name, resets_at


@dataclass(frozen=True)
class Line:
    quota: str
    label: str
    used: int
    limit: int | None
    resets_at: str | None

    @property
    def percent(self) -> int | None:
        if not self.limit:
            return None if self.limit is None else 100
        return min(100, self.used * 100 // self.limit)


@dataclass(frozen=True)
class Bar:
    day: date
    messages: int
    x: float
    y: float
    height: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    bar_width: float
    top: int


@dataclass(frozen=True)
class Usage:
    tenant_id: int
    plan: str | None
    month: str
    lines: list[Line]
    days: list[tuple[date, int, int]]  # (day, messages, campaign recipients) of this month
    sessions: list[tuple[str, str, int]]  # (session id, name, messages this month)
    chart: Chart


def _month_rows(tenant_id: int, first: date, today: date) -> tuple[dict[date, tuple[int, int]], dict[str, int]]:
    rows = db.session.execute(
        select(QuotaUsage.day, QuotaUsage.session_id, QuotaUsage.messages, QuotaUsage.campaign_recipients).where(
            QuotaUsage.tenant_id == tenant_id, QuotaUsage.day >= first, QuotaUsage.day <= today
        )
    ).all()
    days: dict[date, tuple[int, int]] = {}
    sessions: dict[str, int] = {}
    for day, sid, messages, recipients in rows:
        if sid == "":
            days[day] = (messages or 0, recipients or 0)
        else:
            sessions[sid] = sessions.get(sid, 0) + (messages or 0)
    return days, sessions


def chart(days: list[tuple[date, int, int]], *, width: int = 600, height: int = 140) -> Chart:
    """Messages per day as bars (server-rendered SVG)."""
    top = max([n for _, n, _ in days] + [1])
    slot = width / max(len(days), 1)
    bars = []
    for i, (day, n, _) in enumerate(days):
        h = n * height / top
        bars.append(Bar(day, n, round(i * slot + slot * 0.1, 1), round(height - h, 1), round(h, 1)))
    return Chart(width, height, bars, round(slot * 0.8, 1), top)


def tenant_usage(tenant: Tenant) -> Usage:
    """This month's usage of the tenant against each of its limits (the live counts come from Redis)."""
    now = utcnow()
    today = now.date()
    first = today.replace(day=1)
    stored, per_session = _month_rows(tenant.id, first, today)
    msg_day, msg_month, msg_sessions = counters.current("msg", tenant.id, today)
    _, rcpt_month, _ = counters.current("rcpt", tenant.id, today)
    rcpt_today = counters.current("rcpt", tenant.id, today)[0]
    stored[today] = (msg_day, rcpt_today)
    earlier = dict(per_session)
    # the table's row of today may lag behind Redis: today's per-session counts come from Redis
    today_rows = db.session.execute(
        select(QuotaUsage.session_id, QuotaUsage.messages).where(
            QuotaUsage.tenant_id == tenant.id, QuotaUsage.day == today, QuotaUsage.session_id != ""
        )
    ).all()
    for sid, n in today_rows:
        earlier[sid] = earlier.get(sid, 0) - (n or 0)
    for sid, n in msg_sessions.items():
        earlier[sid] = earlier.get(sid, 0) + n
    days = [
        (first + timedelta(days=i), *stored.get(first + timedelta(days=i), (0, 0)))
        for i in range((today - first).days + 1)
    ]
    limits = limits_of(tenant)
    sessions_count = (
        db.session.scalar(select(func.count(WahaSession.id)).where(WahaSession.tenant_id == tenant.id)) or 0
    )
    endpoints = (
        db.session.scalar(select(func.count(WebhookEndpoint.id)).where(WebhookEndpoint.tenant_id == tenant.id)) or 0
    )
    _, media = counters.take_media(tenant.id, 0, None)
    used = {
        "sessions": int(sessions_count),
        "messages_per_day": msg_day,
        "messages_per_month": msg_month,
        "campaign_recipients_per_month": rcpt_month,
        "media_storage": media,
        "api_requests_per_minute": counters.api_calls(tenant.id),
        "team_seats": seats_used(tenant.id, True),
        "webhook_endpoints": int(endpoints),
    }
    lines = []
    for q in QUOTAS:
        resets = resets_at(q.period, now)
        lines.append(Line(q.name, q.label, used[q.name], limits[q.name], resets.isoformat() if resets else None))
    rows = db.session.execute(select(WahaSession.id, WahaSession.name).where(WahaSession.tenant_id == tenant.id))
    names: dict[str, str] = {str(sid): str(name) for sid, name in rows.all()}
    sessions = sorted(((sid, names.get(sid, sid), n) for sid, n in earlier.items() if n), key=lambda s: (-s[2], s[1]))
    return Usage(tenant.id, plan_name(tenant), first.strftime("%Y-%m"), lines, days, sessions, chart(days))


@dataclass(frozen=True)
class TenantLine:
    tenant: Tenant
    plan: str | None
    messages_today: int
    messages_month: int
    recipients_month: int
    limits: dict[str, int | None]


def all_tenants() -> list[TenantLine]:
    """Every tenant's periodic usage this month, from the usage table (as of the last reconcile) and Redis."""
    today = utcnow().date()
    lines = []
    for tenant in db.session.scalars(select(Tenant).order_by(Tenant.name, Tenant.id)):
        d, m, _ = counters.current("msg", tenant.id, today)
        _, r, _ = counters.current("rcpt", tenant.id, today)
        lines.append(TenantLine(tenant, plan_name(tenant), d, m, r, limits_of(tenant)))
    return lines


def csv_of(lines: list[TenantLine]) -> str:
    """The platform's usage table as CSV."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "tenant",
            "slug",
            "plan",
            "messages_today",
            "messages_per_day_limit",
            "messages_month",
            "messages_per_month_limit",
            "campaign_recipients_month",
            "campaign_recipients_limit",
        ]
    )
    for line in lines:
        writer.writerow(
            [
                _cell(line.tenant.name),
                line.tenant.slug,
                _cell(line.plan or ""),
                line.messages_today,
                _limit(line.limits["messages_per_day"]),
                line.messages_month,
                _limit(line.limits["messages_per_month"]),
                line.recipients_month,
                _limit(line.limits["campaign_recipients_per_month"]),
            ]
        )
    return out.getvalue()


def _limit(value: int | None) -> str:
    return "" if value is None else str(value)


def _cell(value: str) -> str:
    """A spreadsheet does not run a cell that starts like a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def as_dict(usage: Usage) -> dict[str, Any]:
    """The usage as the API answers it."""
    return {
        "plan": usage.plan,
        "month": usage.month,
        "quotas": [
            {"quota": line.quota, "used": line.used, "limit": line.limit, "resetsAt": line.resets_at}
            for line in usage.lines
        ],
        "days": [{"day": d.isoformat(), "messages": m, "campaignRecipients": r} for d, m, r in usage.days],
        "sessions": [{"id": sid, "name": name, "messages": n} for sid, name, n in usage.sessions],
    }
