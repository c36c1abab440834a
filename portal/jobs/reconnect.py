"""Keeping `flask worker` and `flask scheduler` alive through a Redis outage.

Without Redis there is nothing to do, so these loops wait: they ping Redis with a growing pause (0.5 s
doubling up to 30 s), start RQ's loop once Redis answers, and start it again when it ends because Redis went
away. Each outage is logged once when it begins and once when it ends; RQ's own "could not connect" line,
which it repeats on every retry, is let through once per outage as well.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis

log = logging.getLogger(__name__)

FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 30.0


class Outage:
    """Tracks whether Redis is down for one loop, so each outage is logged once."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None

    @property
    def active(self) -> bool:
        return self.since is not None

    def down(self, error: BaseException) -> None:
        """Redis failed; log it if this starts an outage."""
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "%s: Redis is unreachable (%s: %s); waiting and reconnecting",
                self.what,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )

    def up(self) -> None:
        """Redis answered; log it if this ends an outage."""
        if self.since is not None:
            log.warning("%s: Redis is reachable again after %.0f s; resuming", self.what, time.monotonic() - self.since)
            self.since = None


def reachable(client: Any) -> bool:
    """True when Redis answers a PING."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def wait_for_redis(client: Any, outage: Outage, sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once Redis answers a PING, pausing longer after each failed try."""
    pause = FIRST_PAUSE_S
    while True:
        try:
            client.ping()
        except redis.RedisError as exc:
            outage.down(exc)
            sleep(pause)
            pause = min(pause * 2, MAX_PAUSE_S)
            continue
        outage.up()
        return


class OncePerOutage(logging.Filter):
    """Lets through the first of RQ's repeated "could not connect to Redis" lines, then none until RQ logs
    anything else (it dequeued a job: Redis is back)."""

    marker = "could not connect to redis"

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.marker in record.getMessage().lower():
            if self.seen:
                return False
            self.seen = True
            return True
        self.seen = False
        return True
