"""Per-session send pacing: a token bucket in Redis, written as GCRA (generic cell rate algorithm).

WhatsApp bans numbers that send in bursts, so each session may send `rate_per_minute` messages a minute with a
small burst allowance. GCRA keeps one value per session, the "theoretical arrival time" (TAT) of the next
message; a send is allowed when it is not earlier than TAT minus the burst tolerance. The read-modify-write runs
under WATCH/MULTI (optimistic locking) rather than a Lua script, so it behaves the same on Redis and on the
in-memory fakeredis of the embedded default, and across every web and worker process. The clock is Redis'
own TIME, so processes on different hosts agree on "now".
"""

from __future__ import annotations

import logging
import math

import redis

from portal.extensions import redis_store
from portal.services.errors import RateLimited

log = logging.getLogger(__name__)

KEY_PREFIX = "pace:"
_MAX_TRIES = 20


def burst_for(rate_per_minute: int) -> int:
    """How many messages may go out back to back before the steady rate applies (a tenth of the rate, 1-10)."""
    return max(1, min(10, rate_per_minute // 10))


def _redis_now(pipe: redis.client.Pipeline) -> float:
    seconds, micros = pipe.time()
    return seconds + micros / 1_000_000


def acquire(session_id: str, rate_per_minute: int, *, burst: int | None = None) -> None:
    """Take one send slot for the session, or raise RateLimited with retry_after (whole seconds, at least 1).

    A rate of 0 or less means the tenant may not send at all. If Redis is unreachable the send is allowed
    (and logged): pacing protects the number, it must not take sending down with it.
    """
    if rate_per_minute <= 0:
        raise RateLimited("Sending is disabled for this tenant.", retry_after=60)
    burst = burst or burst_for(rate_per_minute)
    interval = 60.0 / rate_per_minute
    tolerance = interval * (burst - 1)
    key = KEY_PREFIX + session_id
    client = redis_store.client
    try:
        with client.pipeline() as pipe:
            for _ in range(_MAX_TRIES):
                try:
                    pipe.watch(key)
                    now = _redis_now(pipe)
                    raw = pipe.get(key)
                    tat = max(float(raw), now) if raw is not None else now
                    allowed_at = tat - tolerance
                    if now < allowed_at:
                        pipe.unwatch()
                        wait = allowed_at - now
                        raise RateLimited(
                            f"This session may send {rate_per_minute} messages a minute; try again in "
                            f"{math.ceil(wait)} s.",
                            retry_after=max(1, math.ceil(wait)),
                            details={"rate_per_minute": rate_per_minute, "burst": burst},
                        )
                    new_tat = tat + interval
                    pipe.multi()
                    pipe.set(key, repr(new_tat), px=max(1, math.ceil((new_tat - now) * 1000)) + 1000)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue  # another process took a slot in between; read again
    except redis.RedisError:
        log.warning("send pacing skipped: Redis is unavailable", exc_info=True)
        return
    # Twenty lost races in a row means heavy contention on one session: treat it as "too fast".
    raise RateLimited("Too many sends at once on this session; try again in a second.", retry_after=1)


def reset(session_id: str) -> None:
    """Forget a session's pacing state (used when a session is deleted)."""
    try:
        redis_store.client.delete(KEY_PREFIX + session_id)
    except redis.RedisError:
        log.warning("could not reset send pacing for session %s", session_id, exc_info=True)
