"""Jobs of the forwarding queue: send one delivery attempt, queue the attempts that are due."""

from __future__ import annotations

import logging

from portal.jobs import job
from portal.services import forwarding

log = logging.getLogger(__name__)


@job
def deliver(delivery_id: int) -> str:
    """Send one pending delivery attempt to its destination."""
    status = forwarding.deliver(delivery_id)
    log.info("delivery %s: %s", delivery_id, status)
    return status


@job
def dispatch_due() -> int:
    """Queue delivery attempts whose time has come (retries after back-off, lost first attempts)."""
    return forwarding.dispatch_due()
