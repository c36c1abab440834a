"""Jobs of the send queue: a session's dispatcher, and the sweep that re-drives what a lost job left behind."""

from __future__ import annotations

from portal.jobs import job
from portal.services import outreach


@job
def dispatch_sends(session_id: str) -> dict:
    """Dispatch the session's send queue (services.outreach.dispatch) until nothing is due soon."""
    report = outreach.run(session_id)
    return {"sent": report.sent, "failed": report.failed, "skipped": report.skipped, "held": report.held}


@job
def sweep_sends() -> dict:
    """Items left "sending" by a dead dispatcher go back to the queue; sessions with due items are woken."""
    return outreach.sweep()
