"""Jobs for the benchmarks' baselines: one RQ job per webhook event, one per delivery attempt (same code paths)."""

from sqlalchemy import select

from portal.extensions import db
from portal.jobs import job
from portal.models import WebhookEvent
from portal.services import events


@job
def one_event(event_id: int) -> None:
    """Apply one stored event (what a receiver that queues a job per event would run)."""
    event = db.session.scalars(
        select(WebhookEvent).where(WebhookEvent.id == event_id, WebhookEvent.status == "pending").with_for_update()
    ).first()
    if event is None:
        db.session.rollback()
        return
    events._apply_all([event], set(), careful=False)


@job
def one_delivery(delivery_id: int) -> str:
    """Send one delivery attempt in its own job (how forwarding worked before the drain: a job per attempt)."""
    from portal.services import forwarding

    return forwarding.deliver(delivery_id)
