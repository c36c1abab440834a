"""A session's queue as the queue page shows it: every open item with its position, an estimate of when it goes
(ETA) and why it waits; the queue's state (paused, held by the session's status, quiet hours) and its counts.

The estimate follows the dispatcher's rules: the transactional lane first at the session's pace, then campaign
traffic one mean gap apart, never inside quiet hours, each item not before its own time. A paused queue or a
session that is not WORKING has no estimate (it goes when resumed / when the session works again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select

from portal.extensions import db
from portal.i18n import gettext as _
from portal.models import QueuedSend, SendQueueSession, Tenant, WahaSession, utcnow
from portal.services.outreach.settings import Outreach, outreach_settings
from portal.services.sessions import get_session

SHOWN = 200  # items listed on the page; the counts cover all


@dataclass
class Row:
    item: QueuedSend
    position: int
    eta: datetime | None
    reason: str | None


@dataclass
class QueueView:
    session: WahaSession
    paused: bool
    paused_by: str | None
    settings: Outreach
    rows: list[Row]
    counts: dict[str, int] = field(default_factory=dict)
    late: int = 0
    version: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def held_reason(self) -> str | None:
        if self.paused:
            return _("The queue is paused: nothing is sent until it is resumed.")
        if self.session.status != "WORKING":
            return _("The session is %(status)s: messages wait until it is WORKING again.", status=self.session.status)
        return None


def _reason(item: QueuedSend, eta: datetime | None, now: datetime, settings: Outreach) -> str | None:
    if item.state == "sending":
        return _("being sent")
    if item.hold_reason:
        return item.hold_reason
    if item.not_before is not None and item.not_before > now:
        return _("scheduled") if item.scheduled else _("waiting for its time")
    if item.lane == "campaign" and settings.quiet_until(now) is not None:
        return _("quiet hours")
    return None


def _estimate(
    items: list[QueuedSend], state: SendQueueSession | None, settings: Outreach, rate: int, now: datetime
) -> dict[int, datetime]:
    interval = timedelta(seconds=60.0 / rate) if rate > 0 else timedelta(minutes=1)
    mean_gap = timedelta(seconds=(settings.gap_min + settings.gap_max) / 2)
    step = max(mean_gap, interval)
    t_tx = now
    t_c = max(now, state.next_campaign_at) if state is not None and state.next_campaign_at else now
    etas: dict[int, datetime] = {}
    for item in sorted(items, key=lambda i: (i.lane != "transactional", i.not_before or i.created_at, i.id)):
        due = max(item.not_before or now, now)
        if item.state == "sending":
            etas[item.id] = now
        elif item.lane == "transactional":
            t = max(t_tx, due)
            etas[item.id], t_tx = t, t + interval
        else:
            t = max(t_c, due)
            quiet = settings.quiet_until(t)
            t = quiet or t
            etas[item.id], t_c = t, t + step
    return etas


def queue_view(tenant: Tenant, session_id: Any, now: datetime | None = None) -> QueueView:
    """The session's queue (NotFound for another tenant's session)."""
    now = now or utcnow()
    session = get_session(tenant, session_id)
    state = db.session.get(SendQueueSession, session.id)
    settings = outreach_settings(tenant.id)
    lane_first = case((QueuedSend.lane == "transactional", 0), else_=1)
    items = list(
        db.session.scalars(
            select(QueuedSend)
            .where(QueuedSend.session_id == session.id, QueuedSend.state.in_(("queued", "sending")))
            .order_by(
                (QueuedSend.state != "sending"),
                lane_first,
                func.coalesce(QueuedSend.not_before, QueuedSend.created_at),
                QueuedSend.id,
            )
            .limit(SHOWN)
        )
    )
    counts: dict[str, int] = dict(
        db.session.execute(
            select(QueuedSend.lane, func.count())
            .where(QueuedSend.session_id == session.id, QueuedSend.state.in_(("queued", "sending")))
            .group_by(QueuedSend.lane)
        )
        .tuples()
        .all()
    )
    late = (
        db.session.scalar(
            select(func.count()).where(
                QueuedSend.session_id == session.id, QueuedSend.state == "queued", QueuedSend.late.is_(True)
            )
        )
        or 0
    )
    paused = bool(state and state.paused)
    stopped = paused or session.status != "WORKING"
    etas = {} if stopped else _estimate(items, state, settings, tenant.send_rate_per_minute, now)
    ordered = sorted(items, key=lambda i: (etas.get(i.id) or now, i.lane != "transactional", i.id))
    rows = [Row(i, n + 1, etas.get(i.id), _reason(i, etas.get(i.id), now, settings)) for n, i in enumerate(ordered)]
    newest = max((i.updated_at for i in items), default=None)
    version = f"{len(items)}:{newest.timestamp() if newest else 0}:{paused}:{session.status}:{late}"
    return QueueView(
        session=session,
        paused=paused,
        paused_by=state.paused_by if state else None,
        settings=settings,
        rows=rows,
        counts={"transactional": counts.get("transactional", 0), "campaign": counts.get("campaign", 0)},
        late=late,
        version=version,
    )
