"""Waiting in the dispatcher: the per-session lock (a Redis key holding the running dispatcher's token) and naps
a poke cuts short.

Redis times blocked clients out on its own clock tick (100 ms at the default hz), so a blocking wait ends a
little early and a plain sleep does the rest precisely. Without Redis the lock is skipped (the row claims keep
every item to one send) and naps are plain sleeps.
"""

from __future__ import annotations

import time

import redis

from portal.extensions import redis_store
from portal.services.outreach.queue import LOCK_KEY, POKE_KEY

LOCK_MS = 30_000
BLOCK_SLACK = 0.15  # seconds


def lock(session_id: str, token: str) -> bool | None:
    """Take the session's lock: True, False (another dispatcher runs), None (Redis unavailable: go on)."""
    try:
        return bool(redis_store.client.set(LOCK_KEY + session_id, token, nx=True, px=LOCK_MS))
    except redis.RedisError:
        return None


_RELEASE_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_EXTEND_LUA = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)


def extend_lock(session_id: str, token: str) -> bool:
    """Keep holding the lock; False when it was lost (expired and taken by another dispatcher)."""
    try:
        return bool(redis_store.client.eval(_EXTEND_LUA, 1, LOCK_KEY + session_id, token, LOCK_MS))
    except redis.RedisError:
        return True


def release(session_id: str, token: str) -> None:
    try:
        redis_store.client.eval(_RELEASE_LUA, 1, LOCK_KEY + session_id, token)
    except redis.RedisError:
        pass


def nap(session_id: str, seconds: float) -> bool:
    """Sleep up to `seconds`; True when a poke (a new item, a pause) cut the nap short."""
    if seconds <= 0:
        return False
    deadline = time.monotonic() + seconds
    if seconds > BLOCK_SLACK * 2:
        try:
            client = redis_store.client
            poked = client.blpop([POKE_KEY + session_id], timeout=seconds - BLOCK_SLACK)
            if poked is not None:
                client.delete(POKE_KEY + session_id)
                return True
        except redis.RedisError:
            pass
    time.sleep(max(0.0, deadline - time.monotonic()))
    return False


def poked(session_id: str) -> bool:
    """Whether the dispatcher was poked since it last looked (and forget the pokes)."""
    try:
        return bool(redis_store.client.delete(POKE_KEY + session_id))
    except redis.RedisError:
        return False
