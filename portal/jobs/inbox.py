"""Jobs of the inbox: contacts' profile pictures, fetched once into portal storage and refreshed weekly; a
session's contacts imported from WhatsApp when a member asks."""

from __future__ import annotations

import logging

from portal.jobs import job
from portal.services import avatars, contacts_sync

log = logging.getLogger(__name__)


@job
def fetch_avatars(limit: int = 20) -> dict[str, int]:
    """Fetch the pictures of up to `limit` contacts that have none yet or a stale one (see services.avatars)."""
    counts = avatars.fetch_due(limit)
    if counts:
        log.info("avatars: %s", ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())))
    return counts


@job
def sync_contacts(session_id: str) -> dict[str, int]:
    """Import the session's saved names and push names from WhatsApp's contact list (services.contacts_sync)."""
    counts = contacts_sync.sync_contacts(session_id)
    log.info("contacts sync of session %s: %s read, %s imported", session_id, counts["read"], counts["imported"])
    return counts
