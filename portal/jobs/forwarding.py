"""Jobs of the forwarding queue: drain due delivery attempts, send one attempt, ask for a drain when some are due."""

from __future__ import annotations

import logging

from portal.jobs import job
from portal.services import forwarding

log = logging.getLogger(__name__)


@job
def drain_deliveries() -> dict:
    """Send due delivery attempts in batches until none are due soon (see services.forwarding.drain)."""
    result = forwarding.drain()
    if result.recorded or result.released:
        log.info(
            "deliveries: %d sent, %d succeeded, %d recorded, %d put back%s",
            result.sent,
            result.succeeded,
            result.recorded,
            result.released,
            ", handed over" if result.handed_over else "",
        )
    return {"sent": result.sent, "succeeded": result.succeeded, "recorded": result.recorded}


@job
def deliver(delivery_id: int) -> str:
    """Send one pending delivery attempt to its destination now."""
    status = forwarding.deliver(delivery_id)
    log.info("delivery %s: %s", delivery_id, status)
    return status


@job
def dispatch_due() -> int:
    """Ask for a drain when delivery attempts are due (retries after back-off, attempts whose signal was lost)."""
    return forwarding.dispatch_due()
