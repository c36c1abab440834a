"""The periodic job's work: Redis's counts of the days touched written to `quota_usage`, then the warnings.

Warnings: at 80 % and 100 % of each periodic limit, once per level per period (a `quota_warnings` row is the
"once"), the tenant's owners get a mail and its webhook endpoints a `tenant.quota` event.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

import redis
from flask import current_app
from flask_babel import force_locale, gettext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db, redis_store
from portal.i18n import DEFAULT_LOCALE
from portal.models import Membership, QuotaUsage, QuotaWarning, Tenant, User, utcnow
from portal.services.quotas import counters
from portal.services.quotas.limits import BY_NAME, day_key, limit_of, month_key, resets_at

log = logging.getLogger(__name__)

BATCH = 500
LEVELS = (80, 100)
# the periodic quotas that warn: (quota, counter kind, which count)
WARNED = (
    ("messages_per_day", "msg", "day"),
    ("messages_per_month", "msg", "month"),
    ("campaign_recipients_per_month", "rcpt", "month"),
)


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _write_day(tenant_id: int, day: date) -> None:
    client = redis_store.client
    msg = counters.keys("msg", tenant_id, day, True)
    rcpt = counters.keys("rcpt", tenant_id, day, False)
    pipe = client.pipeline(transaction=False)
    pipe.get(msg[0])
    pipe.get(rcpt[0])
    pipe.hgetall(msg[2])
    messages, recipients, per_session = pipe.execute()
    if messages is None and recipients is None:
        return  # expired or lost: what the table has stays
    wanted: dict[str, dict[str, int]] = {"": {"messages": _int(messages), "campaign_recipients": _int(recipients)}}
    if messages is None or recipients is None:
        stored_today = counters.stored_counts("msg" if messages is None else "rcpt", tenant_id, day)[0]
        wanted[""]["messages" if messages is None else "campaign_recipients"] = stored_today
    for sid, n in per_session.items():
        wanted[sid.decode() if isinstance(sid, bytes) else sid] = {"messages": int(n)}
    rows = {
        row.session_id: row
        for row in db.session.scalars(
            select(QuotaUsage).where(QuotaUsage.tenant_id == tenant_id, QuotaUsage.day == day)
        )
    }
    for sid, values in wanted.items():
        row = rows.get(sid)
        if row is None:
            db.session.add(
                QuotaUsage(
                    tenant_id=tenant_id, day=day, session_id=sid, **{"messages": 0, "campaign_recipients": 0, **values}
                )
            )
        else:
            for column, value in values.items():
                setattr(row, column, value)


def flush(limit: int = BATCH) -> int:
    """Write the counts of the days Redis marked as touched to `quota_usage`; check their warnings. Returns how
    many tenant days were written."""
    try:
        members: list[Any] = list(redis_store.client.spop(counters.DIRTY, limit) or [])
    except redis.RedisError:
        log.warning("quota usage not reconciled: Redis is unavailable")
        return 0
    tenants: set[int] = set()
    written = 0
    for raw in members:
        member = raw.decode() if isinstance(raw, bytes) else str(raw)
        tenant_part, _, day_part = member.partition(":")
        try:
            tenant_id, day = int(tenant_part), datetime.strptime(day_part, "%Y%m%d").date()
        except ValueError:
            continue
        try:
            _write_day(tenant_id, day)
            db.session.commit()
        except IntegrityError:  # another run wrote the same day first: mark it again for the next run
            db.session.rollback()
            redis_store.client.sadd(counters.DIRTY, member)
            continue
        written += 1
        tenants.add(tenant_id)
    for tenant_id in sorted(tenants):
        check_warnings(tenant_id)
    return written


def _period(count: str, today: date) -> str:
    return day_key(today) if count == "day" else month_key(today)


def check_warnings(tenant_id: int) -> list[dict[str, Any]]:
    """Warn the tenant's owners of every periodic limit at 80 % or 100 % not yet warned of in this period;
    returns the warnings given."""
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        return []
    now = utcnow()
    today = now.date()
    given: list[dict[str, Any]] = []
    counts: dict[str, tuple[int, int, dict[str, int]]] = {}
    for quota, kind, count in WARNED:
        limit = limit_of(tenant, quota)
        if not limit:
            continue
        if kind not in counts:
            counts[kind] = counters.current(kind, tenant_id, today)
        day_count, month_count, _ = counts[kind]
        used = day_count if count == "day" else month_count
        period = _period(count, today)
        for level in LEVELS:
            if used * 100 < limit * level:
                continue
            exists = db.session.scalar(
                select(QuotaWarning.id).where(
                    QuotaWarning.tenant_id == tenant_id,
                    QuotaWarning.quota == quota,
                    QuotaWarning.period == period,
                    QuotaWarning.level == level,
                )
            )
            if exists is not None:
                continue
            try:
                with db.session.begin_nested():
                    db.session.add(QuotaWarning(tenant_id=tenant_id, quota=quota, period=period, level=level))
            except IntegrityError:
                continue  # another run warned first
            resets = resets_at(BY_NAME[quota].period, now)
            given.append(
                {
                    "quota": quota,
                    "level": level,
                    "limit": limit,
                    "used": used,
                    "period": period,
                    "resetsAt": resets.isoformat() if resets else None,
                }
            )
    if not given:
        db.session.commit()
        return []
    _tell(tenant, given)
    return given


def _owners(tenant_id: int) -> list[tuple[str, str | None]]:
    """The tenant's active owners, each with their chosen language (None: none chosen)."""
    stmt = (
        select(User.email, User.language)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant_id, Membership.role == "owner", User.is_active_user.is_(True))
        .order_by(User.email)
    )
    return [(email, language) for email, language in db.session.execute(stmt)]


def _tell(tenant: Tenant, given: list[dict[str, Any]]) -> None:
    """Plan the `tenant.quota` events, audit, commit; then mail the owners and queue the deliveries."""
    from portal.services import audit, forwarding
    from portal.services.audit import SYSTEM

    delivery_ids: list[int] = []
    for warning in given:
        rows = forwarding.plan_portal_event(tenant.id, "tenant.quota", warning)
        db.session.flush()
        delivery_ids += [row.id for row in rows]
        audit.record(tenant.id, "quota.warning", SYSTEM, target_type="tenant", target_id=tenant.id, details=warning)
    db.session.commit()
    from portal.mail import send_mail

    base = current_app.config.get("PUBLIC_BASE_URL", "").rstrip("/")
    owners = _owners(tenant.id)
    for warning in given:
        for address, language in owners:
            with force_locale(language or DEFAULT_LOCALE):  # each owner in their own language
                subject, body = _warning_mail(tenant.name, warning, base)
            try:
                send_mail(address, subject, body)
            except Exception:
                log.warning("could not mail %s about the quota of tenant %s", address, tenant.id, exc_info=True)
    forwarding.queue_deliveries(delivery_ids)


def _warning_mail(tenant_name: str, warning: dict[str, Any], base: str) -> tuple[str, str]:
    """The subject and body of a quota warning, in the current locale."""
    label = gettext(BY_NAME[warning["quota"]].label).lower()
    values = {"name": tenant_name, "level": warning["level"], "what": label}
    subject = gettext("[WAHA Portal] %(name)s: %(level)s%% of %(what)s used", **values)
    body = gettext(
        "%(name)s has used %(used)s of %(limit)s (%(what)s, %(level)s%%).", used=warning["used"],
        limit=warning["limit"], **values,
    ) + "\n"  # fmt: skip
    if warning["resetsAt"]:
        body += gettext("The count starts again at %(when)s.", when=warning["resetsAt"]) + "\n"
    link = base + "/usage"
    body += "\n" + gettext("See the usage: %(url)s", url=link) + "\n"
    return subject, body


def recount_media() -> int:
    """Drop every tenant's media byte count, so its next use counts the stored files again (files pruned by
    retention are no longer counted). Returns how many counts were dropped."""
    client = redis_store.client
    dropped = 0
    try:
        for key in client.scan_iter(match=f"{counters.PREFIX}:*:media", count=500):
            dropped += int(client.delete(key))
    except redis.RedisError:
        log.warning("media counts not recounted: Redis is unavailable")
    return dropped
