"""Per-session send pacing: a token bucket in Redis, written as GCRA (generic cell rate algorithm).

WhatsApp bans numbers that send in bursts, so each session may send `rate_per_minute` messages a minute with a
small burst allowance. GCRA keeps one value per session, the "theoretical arrival time" (TAT) of the next
message; a send is allowed when it is not earlier than TAT minus the burst tolerance. The read-modify-write runs
as one Lua script, so it is atomic across every web and worker process and costs one round trip on the send
path (the embedded default's fakeredis runs it with `lupa`). The clock is Redis' own TIME, so processes on
different hosts agree on "now".
"""

from __future__ import annotations

import logging
import math

import redis

from portal.extensions import redis_store
from portal.i18n import N_, N_f
from portal.redisconn import REPLICATE_EFFECTS, LuaScript
from portal.services.errors import RateLimited

log = logging.getLogger(__name__)

KEY_PREFIX = "pace:"

# The GCRA step as a Lua function, shared by this module's script and by the quota take that paces a send in the
# same round trip (services.quotas.counters). key: the session's TAT; interval and tolerance in seconds; cells
# wanted. Takes every cell at once when the first is due ({n, "<seconds since the first was allowed, <= 0>"}),
# else none ({0, "<wait>"}). A script using it starts with REPLICATE_EFFECTS (it reads Redis' TIME, then writes).
RESERVE_FN = """
local function reserve(key, interval, tolerance, cells)
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
  local raw = redis.call('GET', key)
  local tat = now
  if raw then tat = math.max(tonumber(raw), now) end
  local allowed_at = tat - tolerance
  if now < allowed_at then
    return {0, string.format('%.6f', allowed_at - now)}
  end
  local new_tat = tat + interval * cells
  redis.call('SET', key, string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
  return {cells, string.format('%.6f', allowed_at - now)}
end
"""

# KEYS[1] the session's TAT; ARGV[1] interval, ARGV[2] tolerance (seconds), ARGV[3] cells wanted.
_RESERVE = LuaScript(
    REPLICATE_EFFECTS
    + RESERVE_FN
    + "return reserve(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))\n"
)


def _run_acquire(client: redis.Redis, key: str, interval: float, tolerance: float, cells: int = 1) -> list:
    """One round trip. Returns [cells taken (0: none), seconds: until the first is due when none, else since it
    was (<= 0)]."""
    return _RESERVE(client, [key], [repr(interval), repr(tolerance), str(int(cells))])


def burst_for(rate_per_minute: int) -> int:
    """How many messages may go out back to back before the steady rate applies (a tenth of the rate, 1-10)."""
    return max(1, min(10, rate_per_minute // 10))


def slot(rate_per_minute: int, *, burst: int | None = None) -> tuple[float, float, int]:
    """(interval, tolerance, burst) of a session sending `rate_per_minute` messages a minute; RateLimited when
    the rate is 0 or less (the tenant may not send at all)."""
    if rate_per_minute <= 0:
        raise RateLimited(N_("Sending is disabled for this tenant."), retry_after=60)
    burst = burst or burst_for(rate_per_minute)
    interval = 60.0 / rate_per_minute
    return interval, interval * (burst - 1), burst


def refusal(wait: float, rate_per_minute: int, burst: int) -> RateLimited:
    """The RateLimited answer to a send whose slot is `wait` seconds away (retry_after in whole seconds, >= 1)."""
    seconds = math.ceil(wait)
    return RateLimited(
        N_f(
            "This session may send %(rate_per_minute)s messages a minute; try again in %(seconds)s s.",
            rate_per_minute=rate_per_minute,
            seconds=seconds,
        ),
        retry_after=max(1, seconds),
        details={"rate_per_minute": rate_per_minute, "burst": burst},
    )


def acquire(session_id: str, rate_per_minute: int, *, burst: int | None = None) -> None:
    """Take one send slot for the session, or raise RateLimited with retry_after (whole seconds, at least 1).

    A rate of 0 or less means the tenant may not send at all. If Redis is unreachable the send is allowed
    (and logged): pacing protects the number, it must not take sending down with it. (A send that also takes a
    unit of the tenant's quota takes both in one round trip: `services.quotas.take_send(paced=True)`.)
    """
    interval, tolerance, burst = slot(rate_per_minute, burst=burst)
    try:
        allowed, wait = _run_acquire(redis_store.client, KEY_PREFIX + session_id, interval, tolerance)
    except redis.RedisError as exc:
        # The Redis client fails fast while Redis is down (portal.redisconn) and logs the outage once.
        log.info("send pacing skipped: Redis is unavailable (%s)", type(exc).__name__)
        return
    if not allowed:
        raise refusal(float(wait), rate_per_minute, burst)


def try_acquire(session_id: str, rate_per_minute: int, *, burst: int | None = None) -> float:
    """Take one send slot if there is one: 0.0 when taken, else the seconds until there is one (a fraction).

    The send queue's dispatcher uses it: campaign traffic asks with burst 1, so it never spends the burst
    allowance that transactional sends may need. Like `acquire`, it allows the send while Redis is down; a rate
    of 0 or less waits a minute.
    """
    if rate_per_minute <= 0:
        return 60.0
    burst = burst or burst_for(rate_per_minute)
    interval = 60.0 / rate_per_minute
    try:
        allowed, wait = _run_acquire(redis_store.client, KEY_PREFIX + session_id, interval, interval * (burst - 1))
    except redis.RedisError as exc:
        log.info("send pacing skipped: Redis is unavailable (%s)", type(exc).__name__)
        return 0.0
    return 0.0 if allowed else max(float(wait), 0.001)


def reserve(session_id: str, rate_per_minute: int, cells: int, *, burst: int | None = None) -> tuple[int, float]:
    """Take `cells` consecutive send slots in one round trip, when the first is due now: (cells, offset), where
    slot k (from 0) may be used `offset + k * 60 / rate` seconds from now (offset <= 0). Else (0, seconds until
    the first is due). The slots are the ones `try_acquire` would hand out one by one to a sender that never
    falls behind; a sender that does must also keep `60 / rate` seconds after its own previous send (the send
    queue's stream does), so no message goes sooner than one slot at a time would let it. Redis down: the
    slots are given (as `try_acquire` does); a rate of 0 or less waits a minute."""
    if rate_per_minute <= 0:
        return 0, 60.0
    burst = burst or burst_for(rate_per_minute)
    interval = 60.0 / rate_per_minute
    try:
        granted, offset = _run_acquire(
            redis_store.client, KEY_PREFIX + session_id, interval, interval * (burst - 1), cells
        )
    except redis.RedisError as exc:
        log.info("send pacing skipped: Redis is unavailable (%s)", type(exc).__name__)
        return cells, 0.0
    if int(granted) == 0:
        return 0, max(float(offset), 0.001)
    return int(granted), min(float(offset), 0.0)


def reset(session_id: str) -> None:
    """Forget a session's pacing state (used when a session is deleted)."""
    try:
        redis_store.client.delete(KEY_PREFIX + session_id)
    except redis.RedisError:
        log.warning("could not reset send pacing for session %s", session_id, exc_info=True)
