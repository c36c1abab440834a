"""The fast counters in Redis: check-and-take in one Lua script, seeded from PostgreSQL when Redis lost them.

Periodic counts (messages per day and month, campaign recipients per month) live under per-day and per-month
keys; a take adds `n` only when every limit still has room, so racing takers get exactly what is left. Each
take marks the tenant's day "dirty"; the reconcile job (services.quotas.reconcile) writes dirty days to the
`quota_usage` table. A key that is missing (a new day, or Redis lost it) is seeded from that table first.

Redis down: counts are not kept and nothing is refused (sending must not stop because the counter is away).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

import redis
from sqlalchemy import func, select, text

from portal.extensions import db, redis_store
from portal.models import QuotaUsage, utcnow
from portal.redisconn import REPLICATE_EFFECTS, LuaScript
from portal.services.pacing import RESERVE_FN
from portal.services.quotas.limits import day_key, month_key
from portal.waha.breaker import ALLOW_FN, Verdict, verdict

log = logging.getLogger(__name__)

PREFIX = "portal:quota"
DIRTY = f"{PREFIX}:dirty"
DAY_TTL = 3 * 86400
MONTH_TTL = 35 * 86400

# The check-and-take as a Lua function, shared by _TAKE and _GATED_TAKE. kd, km: the day's and month's counts,
# ks: the day's hash per session ("" = none), kdirty: the dirty set; n, the day and month limits (-1 = none), the
# session, the dirty member, the day's time to live (a session hash made here gets it).
# Returns {1 taken | 0 refused | -1 not seeded, used (after), which limit refused (1 day, 2 month)}.
_TAKE_FN = """
local function take(kd, km, ks, kdirty, n, dl, ml, session, member, ttl)
  local d = redis.call('GET', kd)
  local m = redis.call('GET', km)
  if not d or not m then return {-1, 0, 0} end
  d = tonumber(d)
  m = tonumber(m)
  if dl >= 0 and d + n > dl then return {0, d, 1} end
  if ml >= 0 and m + n > ml then return {0, m, 2} end
  redis.call('INCRBY', kd, n)
  redis.call('INCRBY', km, n)
  if ks ~= '' and redis.call('HINCRBY', ks, session, n) == n and redis.call('TTL', ks) < 0 then
    redis.call('EXPIRE', ks, ttl)
  end
  redis.call('SADD', kdirty, member)
  return {1, d + n, m + n}
end
"""
_TAKE_CALL = (
    "take(KEYS[1], KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), "
    "ARGV[4], ARGV[5], ARGV[6])"
)
# KEYS: day, month, session hash ("" = none), dirty set. ARGV: n, day limit, month limit (-1 = none), session,
# dirty member, the day's time to live.
_TAKE = LuaScript(_TAKE_FN + "return " + _TAKE_CALL + "\n")
# A send's gates in one round trip: KEYS and ARGV as _TAKE, then KEYS[5] the session's pacing key (services.pacing;
# "" = not paced) with ARGV[7], ARGV[8] its interval and tolerance, and KEYS[6] the WAHA server's breaker
# (portal.waha.breaker; "" = not asked) with ARGV[9] its reset seconds. The slot is taken first, as a send asks;
# a refused slot takes no unit ({-2, "<seconds until the slot>", 0}). A slot taken stays taken when the unit is
# refused or the counts are not seeded ({-1, ...}: the caller seeds them and takes the unit alone). The breaker is
# asked only once the unit is taken, so a refused send holds no half-open trial: {1, used, used, verdict...}.
_GATED_TAKE = LuaScript(
    REPLICATE_EFFECTS
    + RESERVE_FN
    + _TAKE_FN
    + ALLOW_FN
    + """
if KEYS[5] ~= '' then
  local slot = reserve(KEYS[5], tonumber(ARGV[7]), tonumber(ARGV[8]), 1)
  if slot[1] == 0 then return {-2, slot[2], 0} end
end
local took = """
    + _TAKE_CALL
    + """
if took[1] ~= 1 or KEYS[6] == '' then return took end
local verdict = allow(KEYS[6], ARGV[9])
return {took[1], took[2], took[3], verdict[1], verdict[2], verdict[3]}
"""
)
# KEYS as _TAKE. ARGV: n, session, dirty member. Only counts that exist are lowered.
_GIVE = LuaScript(
    """
local n = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECRBY', KEYS[1], n) end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECRBY', KEYS[2], n) end
if KEYS[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then redis.call('HINCRBY', KEYS[3], ARGV[2], -n) end
redis.call('SADD', KEYS[4], ARGV[3])
return 1
"""
)
# KEYS as _TAKE (without the dirty set). ARGV: day value, month value, day ttl, month ttl, then session, count...
_SEED = LuaScript(
    """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3], 'NX')
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4], 'NX')
if KEYS[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 0 then
  for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
return 1
"""
)
# One standing amount (media bytes). KEYS: the count. ARGV: n, limit (-1 = none).
_TAKE_ONE = LuaScript(
    """
local v = redis.call('GET', KEYS[1])
if not v then return {-1, 0} end
v = tonumber(v)
local n = tonumber(ARGV[1])
local l = tonumber(ARGV[2])
if n > 0 and l >= 0 and v + n > l then return {0, v} end
redis.call('INCRBY', KEYS[1], n)
return {1, v + n}
"""
)


def _run(script: LuaScript, keys: list[str], args: list[Any]) -> Any:
    return script(redis_store.client, keys, args)


@dataclass(frozen=True)
class Taken:
    """Units taken from a tenant's periodic count: what a failed send gives back."""

    kind: str
    tenant_id: int
    day: date
    session_id: str
    n: int


@dataclass(frozen=True)
class Answer:
    taken: Taken | None  # None when refused (or Redis did not answer: `counted` False)
    used: int = 0
    refused_by: str | None = None  # "day" or "month"
    counted: bool = True
    pace_wait: float | None = None  # a paced take: seconds until the session's slot, when it refused the send
    verdict: Verdict | None = None  # the WAHA server's breaker, when asked in the same round trip


def keys(kind: str, tenant_id: int, day: date, with_sessions: bool) -> list[str]:
    base = f"{PREFIX}:{tenant_id}:{kind}"
    return [
        f"{base}:d:{day_key(day)}",
        f"{base}:m:{month_key(day)}",
        f"{base}:s:{day_key(day)}" if with_sessions else "",
    ]


_COLUMN = {"msg": "messages", "rcpt": "campaign_recipients"}


def stored_counts(kind: str, tenant_id: int, day: date) -> tuple[int, int, dict[str, int]]:
    """From `quota_usage`: the day's total, the month's total and the day's count per session."""
    column = getattr(QuotaUsage, _COLUMN[kind])
    first = day.replace(day=1)
    month = db.session.scalar(
        select(func.coalesce(func.sum(column), 0)).where(
            QuotaUsage.tenant_id == tenant_id,
            QuotaUsage.session_id == "",
            QuotaUsage.day >= first,
            QuotaUsage.day <= day,
        )
    )
    rows = db.session.execute(
        select(QuotaUsage.session_id, column).where(QuotaUsage.tenant_id == tenant_id, QuotaUsage.day == day)
    ).all()
    per_session = {sid: int(n or 0) for sid, n in rows if sid}
    today = next((int(n or 0) for sid, n in rows if sid == ""), 0)
    return today, int(month or 0), per_session


def seed(kind: str, tenant_id: int, day: date) -> None:
    """Put the stored counts into Redis where its keys are missing (never over a count Redis has)."""
    today, month, per_session = stored_counts(kind, tenant_id, day)
    pairs: list[Any] = []
    for sid, n in per_session.items():
        pairs += [sid, n]
    _run(_SEED, keys(kind, tenant_id, day, kind == "msg"), [today, month, DAY_TTL, MONTH_TTL, *pairs])


def take(
    kind: str,
    tenant_id: int,
    n: int,
    day_limit: int | None,
    month_limit: int | None,
    session_id: str = "",
    pace: tuple[str, float, float] | None = None,
    breaker: tuple[str, float] | None = None,
) -> Answer:
    """Take `n` units when both limits have room for them (one round trip when the keys exist).

    A send's other gates ride along in the same round trip: `pace` (the session's pacing key, interval and
    tolerance: services.pacing) takes its slot first, and a refused slot takes nothing (`pace_wait`); `breaker`
    (a WAHA server's breaker key and reset seconds: portal.waha.breaker) is asked once the unit is taken
    (`verdict`). Redis down: nothing is counted, paced or asked."""
    day = utcnow().date()
    ks = keys(kind, tenant_id, day, bool(session_id))
    args = [n, -1 if day_limit is None else day_limit, -1 if month_limit is None else month_limit, session_id]
    member = f"{tenant_id}:{day_key(day)}"
    try:
        if pace is None and breaker is None:
            result = _run(_TAKE, [*ks, DIRTY], [*args, member, DAY_TTL])
        else:
            pace_key, interval, tolerance = pace or ("", 0.0, 0.0)
            breaker_key, reset_s = breaker or ("", 0.0)
            result = _run(
                _GATED_TAKE,
                [*ks, DIRTY, pace_key, breaker_key],
                [*args, member, DAY_TTL, repr(interval), repr(tolerance), repr(reset_s)],
            )
            if int(result[0]) == -2:
                return Answer(None, counted=False, pace_wait=float(result[1]))
        if int(result[0]) == -1:
            seed(kind, tenant_id, day)
            result = _run(_TAKE, [*ks, DIRTY], [*args, member, DAY_TTL])
    except redis.RedisError:
        log.warning("quota not counted%s: Redis is unavailable", "" if pace is None else " and the send not paced")
        return Answer(None, counted=False)
    if int(result[0]) == 1:
        asked = verdict(result[3:6]) if len(result) == 6 else None
        return Answer(Taken(kind, tenant_id, day, session_id, n), int(result[1]), verdict=asked)
    return Answer(None, int(result[1]), "day" if int(result[2]) == 1 else "month")


def give_back(taken: Taken) -> None:
    """Return units taken for something that did not happen (a send that never reached WAHA)."""
    ks = keys(taken.kind, taken.tenant_id, taken.day, bool(taken.session_id))
    try:
        _run(_GIVE, [*ks, DIRTY], [taken.n, taken.session_id, f"{taken.tenant_id}:{day_key(taken.day)}"])
    except redis.RedisError:
        log.warning("quota unit not given back: Redis is unavailable")


def current(kind: str, tenant_id: int, day: date) -> tuple[int, int, dict[str, int]]:
    """The day's and month's counts and the day's per session, from Redis (seeded when missing)."""
    ks = keys(kind, tenant_id, day, True)
    try:
        client = redis_store.client
        d, m = client.mget(ks[0], ks[1])
        if d is None or m is None:
            seed(kind, tenant_id, day)
            d, m = client.mget(ks[0], ks[1])
        sessions = {_s(k): int(v) for k, v in client.hgetall(ks[2]).items()} if kind == "msg" else {}
        return int(d or 0), int(m or 0), sessions
    except redis.RedisError:
        return stored_counts(kind, tenant_id, day)


def peek(kind: str, tenant_id: int, day: date) -> tuple[int | None, int | None]:
    """The day's and month's counts as Redis has them (None: not counted there, or Redis away)."""
    ks = keys(kind, tenant_id, day, False)
    try:
        d, m = redis_store.client.mget(ks[0], ks[1])
    except redis.RedisError:
        return None, None
    return (int(d) if d is not None else None), (int(m) if m is not None else None)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# API calls: the tenant's minute is counted by the API's rate-limit script (portal.api.ratelimit), in its one
# round trip; its key lives here so the usage can read it.


def api_minute_key(tenant_id: int) -> str:
    return f"{PREFIX}:{tenant_id}:api-minute"


def api_calls(tenant_id: int) -> int:
    """The tenant's API calls in its current minute."""
    try:
        return int(redis_store.client.get(api_minute_key(tenant_id)) or 0)
    except redis.RedisError:
        return 0


# Media storage: a standing amount, counted from the stored files when Redis has no count.


def media_key(tenant_id: int) -> str:
    return f"{PREFIX}:{tenant_id}:media"


def stored_media_bytes(tenant_id: int) -> int:
    """The bytes of the tenant's stored inbound files, from the messages' media records."""
    if db.session.get_bind().dialect.name == "postgresql":
        size = "(media ->> 'size')::bigint"
        stored = "(media ->> 'status') = 'stored'"
    else:
        size = "CAST(json_extract(media, '$.size') AS INTEGER)"
        stored = "json_extract(media, '$.status') = 'stored'"
    sql = f"SELECT COALESCE(SUM({size}), 0) FROM messages WHERE tenant_id = :t AND media IS NOT NULL AND {stored}"
    return int(db.session.execute(text(sql), {"t": tenant_id}).scalar() or 0)


def take_media(tenant_id: int, n: int, limit: int | None) -> tuple[bool, int]:
    """Add `n` bytes when the limit has room (n = 0 only reads); (taken, bytes used after or before refusal)."""
    key = media_key(tenant_id)
    try:
        result = _run(_TAKE_ONE, [key], [n, -1 if limit is None else limit])
        if int(result[0]) == -1:
            redis_store.client.set(key, stored_media_bytes(tenant_id), ex=MONTH_TTL, nx=True)
            result = _run(_TAKE_ONE, [key], [n, -1 if limit is None else limit])
    except redis.RedisError:
        return True, 0
    return int(result[0]) == 1, int(result[1])
