"""Jobs of the inbox: contacts' profile pictures, fetched once into portal storage and refreshed weekly."""

from __future__ import annotations

import logging

from portal.jobs import job
from portal.services import avatars

log = logging.getLogger(__name__)


@job
def fetch_avatars(limit: int = 20) -> dict[str, int]:
    """Fetch the pictures of up to `limit` contacts that have none yet or a stale one (see services.avatars)."""
    counts = avatars.fetch_due(limit)
    if counts:
        log.info("avatars: %s", ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())))
    return counts
