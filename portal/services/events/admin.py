"""Operating the event store: the sweeper, replaying a stored event, and counts for the CLI and dashboards."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import select, update

from portal.extensions import db
from portal.i18n import N_
from portal.models import WebhookEvent, utcnow
from portal.services.errors import Invalid, NotFound
from portal.services.events.signal import request_drain
from portal.services.media import requeue_pending

log = logging.getLogger(__name__)


def sweep(older_than: int = 30) -> int:
    """Queue processing when events have waited longer than `older_than` seconds, and the download of media
    files pending as long (their job was lost, or Redis was down); returns how many events wait."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    # Events of a session deleted before they were processed have nobody to go to.
    db.session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.status == "pending", WebhookEvent.session_id.is_(None))
        .values(status="ignored", error="session no longer exists", processed_at=utcnow())
    )
    waiting = (
        db.session.scalar(
            select(sa.func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.status == "pending", WebhookEvent.received_at < cutoff)
        )
        or 0
    )
    db.session.commit()
    if waiting:
        log.info("%d event(s) waited more than %d s; queueing processing", waiting, older_than)
        request_drain(force=True)
    try:
        requeue_pending(older_than)
    except Exception:
        db.session.rollback()
        log.warning("could not re-queue pending media", exc_info=True)
    return waiting


def replay_event(event_id: str) -> WebhookEvent:
    """Process a stored event again (after a fix); applying an event twice changes nothing the first did not."""
    event = db.session.scalar(
        select(WebhookEvent).where(
            sa.or_(
                WebhookEvent.event_id == event_id,
                WebhookEvent.id == (int(event_id) if event_id.isascii() and event_id.isdecimal() else -1),
            )
        )
    )
    if event is None:
        raise NotFound(f"No stored event {event_id!r}.", code="event_not_found")
    if event.session_id is None:
        raise Invalid(N_("This event belongs to no session; there is nothing to apply it to."), code="event_ignored")
    event.status, event.attempts, event.error, event.processed_at = "pending", 0, None, None
    db.session.commit()
    request_drain(force=True)
    return event


# ============================================================================================== listing


def count_by_status() -> dict[str, int]:
    """Number of stored events per status (for the CLI and dashboards)."""
    rows = db.session.execute(select(WebhookEvent.status, sa.func.count()).group_by(WebhookEvent.status))
    return {status: count for status, count in rows}  # noqa: C416 (a Result has keys(): dict() would take it for a mapping)


def failed_events(limit: int = 50) -> Iterable[WebhookEvent]:
    """The newest events whose processing failed for good."""
    return db.session.scalars(
        select(WebhookEvent).where(WebhookEvent.status == "failed").order_by(WebhookEvent.id.desc()).limit(limit)
    )
