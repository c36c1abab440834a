"""The numbers on a tenant's dashboard: sessions by status, today's traffic and failures, WAHA health."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

import redis
from sqlalchemy import func, literal_column, select

from portal.extensions import db, redis_store
from portal.models import Message, WahaServer, WahaSession, WebhookDelivery, utcnow
from portal.services import health

log = logging.getLogger(__name__)

# Shown first and in this order; any other status WAHA reports follows alphabetically.
STATUS_ORDER = ("WORKING", "SCAN_QR_CODE", "STARTING", "FAILED", "STOPPED")
# Every dashboard view would otherwise probe every WAHA server; one check serves all viewers for this long.
HEALTH_CACHE_SECONDS = 30
HEALTH_CACHE_KEY = "portal:dashboard:waha_health"


@dataclass
class DashboardSummary:
    """Counts for one tenant since the start of the current UTC day."""

    since: datetime
    sessions_by_status: list[tuple[str, int]] = field(default_factory=list)
    sessions_total: int = 0
    # sessions whose number WhatsApp limits or warns about (services.number_health), worst first
    limited_sessions: list[Any] = field(default_factory=list)
    messages_in_today: int = 0
    messages_out_today: int = 0
    failed_sends_today: int = 0
    failed_deliveries_today: int = 0

    def count(self, status: str) -> int:
        """Sessions in one status (0 when none)."""
        return dict(self.sessions_by_status).get(status, 0)


@dataclass
class HealthOverview:
    """WAHA servers as the health check sees them; `live` is False when only stored state is known."""

    servers: list[dict[str, Any]]
    live: bool
    note: str | None = None


def start_of_day(now: datetime | None = None) -> datetime:
    """Midnight UTC of the day `now` falls in."""
    now = now or utcnow()
    return datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)


def summary(tenant: Any, *, now: datetime | None = None) -> DashboardSummary:
    """Session counts by status and today's message and delivery figures of one tenant."""
    since = start_of_day(now)
    result = DashboardSummary(since=since)

    rows = (
        db.session.execute(
            select(WahaSession.status, func.count(WahaSession.id))
            .where(WahaSession.tenant_id == tenant.id)
            .group_by(WahaSession.status)
        )
        .tuples()
        .all()
    )
    counts = dict(rows)
    ordered = [s for s in STATUS_ORDER if s in counts] + sorted(s for s in counts if s not in STATUS_ORDER)
    result.sessions_by_status = [(s, counts[s]) for s in ordered]
    result.sessions_total = sum(counts.values())
    result.limited_sessions = list(
        db.session.scalars(
            select(WahaSession)
            .where(WahaSession.tenant_id == tenant.id, WahaSession.limit_level.in_(("warning", "limited")))
            .order_by(WahaSession.limit_level.asc(), WahaSession.name)  # "limited" first
            .limit(20)
        )
    )

    # One pass over the day's rows of the (tenant, created_at, id) index, which on PostgreSQL carries direction and
    # status: the count reads the index, not the table (an index-only scan where the pages are all-visible).
    inbound, outbound, failed_sends = db.session.execute(
        select(
            func.count().filter(Message.direction == "in"),
            func.count().filter(Message.direction == "out"),
            func.count().filter(Message.direction == "out", Message.status == "ERROR"),
        ).where(Message.tenant_id == tenant.id, Message.created_at >= since)
    ).one()
    result.messages_in_today = inbound or 0
    result.messages_out_today = outbound or 0
    result.failed_sends_today = failed_sends or 0

    # A delivery is retried as new rows with the same msg_id; count each event once, and not at all when a
    # later attempt succeeded. The day's failed attempts come from a partial index that holds failed rows only.
    failed = WebhookDelivery.__table__.alias("failed")
    succeeded = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.tenant_id == tenant.id,
            WebhookDelivery.status == "succeeded",
            WebhookDelivery.msg_id == failed.c.msg_id,
        )
        .exists()
    )
    result.failed_deliveries_today = (
        db.session.scalar(
            select(func.count(func.distinct(failed.c.msg_id))).where(
                failed.c.tenant_id == tenant.id,
                failed.c.created_at >= since,
                # literals, so that the partial index's condition is seen to hold also in a prepared statement
                failed.c.status.in_([literal_column("'failed'"), literal_column("'dead'")]),
                ~succeeded,
            )
        )
        or 0
    )
    return result


def waha_health() -> HealthOverview:
    """Health of every WAHA server from the live check, shared by all viewers for HEALTH_CACHE_SECONDS; the last
    stored state when the live check is not available or fails."""
    try:
        cached = redis_store.client.get(HEALTH_CACHE_KEY)
    except redis.RedisError:
        cached = None
    if cached:
        return HealthOverview(servers=json.loads(cached), live=True)
    try:
        servers = [_public(row) for row in health.waha_health()]
    except Exception:  # the dashboard must render even when the check itself breaks
        log.exception("WAHA health check failed")
        db.session.rollback()
        note = "The live health check failed; showing the last known state."
    else:
        try:
            redis_store.client.set(HEALTH_CACHE_KEY, json.dumps(servers, default=str), ex=HEALTH_CACHE_SECONDS)
        except redis.RedisError:
            pass
        return HealthOverview(servers=servers, live=True)
    servers = [
        {
            "name": s.name,
            "base_url": s.base_url,
            "ok": None if s.health == "unknown" else s.health == "ok",
            "version": s.version,
            "engine": s.engine,
            "tier": s.tier,
            "latency_ms": None,
            "error": s.health_error,
        }
        for s in db.session.scalars(select(WahaServer).order_by(WahaServer.name))
    ]
    return HealthOverview(servers=servers, live=False, note=note)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """The fields the dashboard shows (other tenants' session counts stay out)."""
    return {key: row.get(key) for key in ("name", "base_url", "ok", "version", "engine", "tier", "latency_ms", "error")}
