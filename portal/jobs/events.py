"""Jobs of the events queue: drain pending webhook events, sweep up forgotten ones, fetch inbound media."""

from __future__ import annotations

import logging

from portal.jobs import job
from portal.services import events

log = logging.getLogger(__name__)


@job
def drain_events() -> dict:
    """Process pending events in batches until none are left for this worker (see services.events.drain)."""
    result = events.drain()
    if result.processed or result.failed:
        log.info(
            "events: %d processed, %d failed in %d batch(es)%s",
            result.processed,
            result.failed,
            result.batches,
            ", handed over" if result.handed_over else "",
        )
    return {"processed": result.processed, "failed": result.failed, "batches": result.batches}


@job
def sweep_events(older_than: int = 30) -> int:
    """Queue processing for events that have waited more than `older_than` seconds."""
    return events.sweep(older_than)


@job
def fetch_media(message_id: int, url: str) -> str:
    """Download one inbound file from WAHA into portal storage."""
    outcome = events.fetch_media(message_id, url)
    log.info("media of message %s: %s", message_id, outcome)
    return outcome
