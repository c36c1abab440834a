"""Jobs about outgoing messages: settling sends whose outcome WAHA never told us."""

from __future__ import annotations

import logging

from portal.jobs import job
from portal.services import outbox

log = logging.getLogger(__name__)


@job
def reconcile_sends() -> dict:
    """Settle sends left unknown (timeouts): look each one up in WAHA by its WhatsApp id (services.outbox)."""
    report = outbox.reconcile()
    return {"settled": report.settled, "failed": report.failed, "open": report.open}
