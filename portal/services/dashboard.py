"""The numbers on a tenant's dashboard: sessions by status, today's traffic and failures, WAHA health."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import redis
from sqlalchemy import func, literal_column, select

from portal.extensions import db, redis_store
from portal.models import Message, WahaServer, WahaSession, WebhookDelivery, utcnow
from portal.redisconn import LuaScript
from portal.services import health

log = logging.getLogger(__name__)

# Shown first and in this order; any other status WAHA reports follows alphabetically.
STATUS_ORDER = ("WORKING", "SCAN_QR_CODE", "STARTING", "FAILED", "STOPPED")
# Every dashboard view would otherwise probe every WAHA server; one check serves all viewers for this long.
HEALTH_CACHE_SECONDS = 30
HEALTH_CACHE_KEY = "portal:dashboard:waha_health"

# The day's inbound and outbound counts are kept in Redis up to a moment ("upto") that each view moves forward, so a
# view counts only the rows stamped since the last one: the page stays as fast at a million messages a day as at a
# hundred. A row is counted into the kept figures once it is SEAL older than now: its transaction has committed by
# then (the database ends one left idle after DATABASE_IDLE_TRANSACTION_TIMEOUT, 60 s), and the web and worker
# hosts' clocks agree to well within it. Direction and created_at never change, so kept counts stay true until a
# row is deleted: deleting messages calls `forget_today`. Failed sends are counted live from their own small index,
# since a failure can be retried back to PENDING.
SEAL = timedelta(minutes=2)
TODAY_KEY = "portal:dashboard:today:{tenant_id}:{day}"
TODAY_TTL_SECONDS = 2 * 86400
# KEYS[1] the tenant's day; ARGV: the generation the counts were read in, upto (microseconds since the epoch), in,
# out, ttl. Only moves upto forward, so two views that counted to different moments keep the later one, and keeps
# nothing counted before `forget_today` moved the generation on (the rows counted may be gone).
_KEEP_LUA = """
if (redis.call('HGET', KEYS[1], 'gen') or '0') ~= ARGV[1] then return 0 end
local upto = tonumber(redis.call('HGET', KEYS[1], 'upto') or '-1')
if tonumber(ARGV[2]) > upto then
  redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'upto', ARGV[2], 'in', ARGV[3], 'out', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return 1
"""
_KEEP = LuaScript(_KEEP_LUA)


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

    result.messages_in_today, result.messages_out_today, result.failed_sends_today = _todays_messages(
        tenant.id, since, now or utcnow()
    )

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


@dataclass(frozen=True)
class _Kept:
    """The day's counts of rows stamped before `upto`, as kept in generation `gen`."""

    upto: datetime
    inbound: int = 0
    outbound: int = 0
    gen: str = "0"


def _today_key(tenant_id: int, since: datetime) -> str:
    return TODAY_KEY.format(tenant_id=tenant_id, day=since.date().isoformat())


def _micros(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


def _kept(tenant_id: int, since: datetime) -> _Kept | None:
    """What earlier views counted of the day; None when Redis cannot say."""
    try:
        stored = redis_store.client.hgetall(_today_key(tenant_id, since))
    except redis.RedisError:
        return None
    values = {_text(k): _text(v) for k, v in stored.items()}
    gen = values.get("gen", "0")
    if "upto" not in values:
        return _Kept(since, gen=gen)
    upto = datetime.fromtimestamp(int(values["upto"]) / 1_000_000, UTC)
    return _Kept(max(upto, since), int(values.get("in", 0)), int(values.get("out", 0)), gen)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _keep(tenant_id: int, since: datetime, kept: _Kept) -> None:
    args = (kept.gen, _micros(kept.upto), kept.inbound, kept.outbound, TODAY_TTL_SECONDS)
    try:
        _KEEP(redis_store.client, [_today_key(tenant_id, since)], args)
    except redis.RedisError:
        pass  # the next view counts again from what was kept before


def _todays_messages(tenant_id: int, since: datetime, now: datetime) -> tuple[int, int, int]:
    """Inbound, outbound and failed outbound messages of the day: the kept counts plus the rows since, in one
    round trip (the (tenant, created_at, id) index carries direction, and failed sends have a partial index of
    their own, so on PostgreSQL both counts read an index alone)."""
    kept = _kept(tenant_id, since)
    start = kept.upto if kept is not None else since
    seal = max(now - SEAL, start)
    recent = (Message.tenant_id == tenant_id, Message.created_at >= start)
    failed = (
        select(func.count())
        .where(
            Message.tenant_id == tenant_id,
            Message.created_at >= since,
            # literals, so that the partial index's condition is seen to hold also in a prepared statement
            Message.direction == literal_column("'out'"),
            Message.status == literal_column("'ERROR'"),
        )
        .scalar_subquery()
    )
    sealed_in, sealed_out, inbound, outbound, failed_sends = db.session.execute(
        select(
            func.count().filter(Message.direction == "in", Message.created_at < seal),
            func.count().filter(Message.direction == "out", Message.created_at < seal),
            func.count().filter(Message.direction == "in"),
            func.count().filter(Message.direction == "out"),
            failed,
        ).where(*recent)
    ).one()
    if kept is None:
        return inbound, outbound, failed_sends
    if seal > kept.upto:
        _keep(tenant_id, since, _Kept(seal, kept.inbound + sealed_in, kept.outbound + sealed_out, kept.gen))
    return kept.inbound + inbound, kept.outbound + outbound, failed_sends


def forget_today(tenant_id: int) -> None:
    """Drop the day's kept counts of the tenant (after its messages were deleted): the next view counts the day
    again, and a view that counted before the deletion keeps nothing (the generation moved on)."""
    key = _today_key(tenant_id, start_of_day())
    try:
        with redis_store.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "gen", 1)
            pipe.hdel(key, "upto", "in", "out")
            pipe.expire(key, TODAY_TTL_SECONDS)
            pipe.execute()
    except redis.RedisError:
        log.warning("the dashboard's counts of today were not reset: Redis is unavailable")


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
