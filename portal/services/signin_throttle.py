"""Throttling of password sign-ins per (account, client address) pair, counted atomically in Redis.

Each pair gets a few free attempts; after that every attempt opens a wait that doubles, up to a cap. The check
and the count are one Lua script, so parallel attempts cannot slip past it: of a burst of guesses, only the free
ones reach the password check. A pair is not the whole account, so a stranger who hammers an address from one
place does not lock the owner out elsewhere; and the owner always has the reset link, which changes the password
and with it the pair's key (see `key_for`).
"""

from __future__ import annotations

import hashlib
import math
import time

from portal.extensions import redis_store
from portal.models import User

FREE_ATTEMPTS = 5  # attempts per pair before the first wait
FIRST_WAIT = 30  # seconds of the first wait; each further attempt doubles it
MAX_WAIT = 15 * 60  # seconds: the longest wait
FORGET_AFTER = 24 * 3600  # seconds without attempts after which a pair starts afresh

# KEYS[1]: the pair's hash {n: attempts counted, until: ms before which attempts are refused}
# ARGV: now (ms), free attempts, first wait (ms), longest wait (ms), ttl (s)
# Returns 0 when this attempt may go ahead (and counts it), else the milliseconds left to wait.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local blocked = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if blocked > now then
  return blocked - now
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local free = tonumber(ARGV[2])
if n >= free then
  local wait = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * math.pow(2, math.min(n - free, 30)))
  redis.call('HSET', KEYS[1], 'until', string.format('%d', now + wait))
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return 0
"""


def key_for(user: User | None, email: str, ip: str | None) -> str:
    """The Redis key of the (account, address) pair.

    A known account is keyed by its id and its credential fingerprint: a new password (the reset link) starts
    every pair afresh. An unknown address gets a pair of its own with the same rules, so the answers do not
    tell which addresses have accounts."""
    if user is not None:
        who = f"u{user.id}.{user.credential_fingerprint}"
    else:
        who = "e" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"portal:signin:{who}:{ip or '-'}"


def acquire(key: str) -> int:
    """Count one attempt for the pair; 0 when it may go ahead, else the seconds to wait first."""
    left_ms = redis_store.client.eval(
        _ACQUIRE, 1, key, int(time.time() * 1000), FREE_ATTEMPTS, FIRST_WAIT * 1000, MAX_WAIT * 1000, FORGET_AFTER
    )
    return math.ceil(int(left_ms) / 1000) if left_ms else 0


def clear(key: str) -> None:
    """Forget the pair's attempts after a successful sign-in."""
    redis_store.client.delete(key)
