"""Outbound traffic that waits its turn: the per-session send queue, its per-session state and the tenant's
outreach settings (time zone, quiet hours, the gap between campaign messages).

`send_queue` holds every message the portal sends later or paced: scheduled messages (`sendAt`), campaign
traffic and transactional sends that had to wait. A dispatcher per session takes the next due row (the
transactional lane first), applies quiet hours, the campaign gap, the registered gates and the session's pacing,
and sends it through the ordinary send service under an idempotency key derived from the row's id.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, BigId, JSONType, TenantScoped, TimestampMixin, UTCDateTime
from portal.models.waha import WahaSession

LANES = ("transactional", "campaign")
QUEUE_STATES = ("queued", "sending", "sent", "failed", "cancelled", "skipped")
OPEN_STATES = ("queued", "sending")
SETTLED_STATES = ("sent", "failed", "cancelled", "skipped")


class QueuedSend(TenantScoped, TimestampMixin, Base):
    """One message waiting to be sent (or sent, failed, cancelled, skipped) through a session's queue."""

    __tablename__ = "send_queue"
    __table_args__ = (
        # the dispatcher's pick: a session's open rows, transactional lane first, then by due time
        Index(
            "ix_send_queue_session_open",
            "session_id",
            "lane",
            "not_before",
            "id",
            postgresql_where=sa.text("state IN ('queued', 'sending')"),
            sqlite_where=sa.text("state IN ('queued', 'sending')"),
        ),
        # the sweep: due rows of every session, and rows left "sending" by a worker that died
        Index(
            "ix_send_queue_open_due",
            "state",
            "not_before",
            postgresql_where=sa.text("state IN ('queued', 'sending')"),
            sqlite_where=sa.text("state IN ('queued', 'sending')"),
        ),
        # the scheduled messages list of a tenant, newest first
        Index("ix_send_queue_tenant_scheduled", "tenant_id", "scheduled", "id"),
        Index("ix_send_queue_origin", "origin", "origin_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(ForeignKey("waha_sessions.id", ondelete="CASCADE"))
    lane: Mapped[str] = mapped_column(String(16), default="transactional")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    chat_id: Mapped[str] = mapped_column(String(128))
    body: Mapped[str | None] = mapped_column(Text)
    media: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    reply_to: Mapped[str | None] = mapped_column(String(255))
    # UTC; NULL = as soon as the lane allows
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_reason: Mapped[str | None] = mapped_column(String(200))
    origin: Mapped[str | None] = mapped_column(String(32))
    origin_id: Mapped[int | None] = mapped_column(BigId)
    typing: Mapped[bool] = mapped_column(Boolean, default=False)
    # the sent message (messages.id); no foreign key: messages is partitioned on PostgreSQL, and retention may
    # drop the message while this row stays
    message_id: Mapped[int | None] = mapped_column(BigId)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_type: Mapped[str] = mapped_column(String(16), default="system")
    created_by_id: Mapped[str | None] = mapped_column(String(64))
    created_by_label: Mapped[str | None] = mapped_column(String(255))

    session: Mapped[WahaSession] = relationship()


class SendQueueSession(Base):
    """A session's queue state: paused by a person, and when the next campaign message may go (the gap)."""

    __tablename__ = "send_queue_sessions"

    session_id: Mapped[str] = mapped_column(ForeignKey("waha_sessions.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused_by: Mapped[str | None] = mapped_column(String(255))
    # the earliest moment the next campaign-lane message may be sent (the last one's time plus a random gap)
    next_campaign_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutreachSettings(Base):
    """A tenant's outreach settings; a tenant without a row uses the defaults below."""

    __tablename__ = "outreach_settings"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    # campaign traffic waits out [start, end) in the tenant's time zone; both NULL = no quiet hours
    quiet_start: Mapped[time | None] = mapped_column(sa.Time())
    quiet_end: Mapped[time | None] = mapped_column(sa.Time())
    # seconds between two campaign messages of a session, drawn uniformly from [gap_min, gap_max]
    gap_min: Mapped[float] = mapped_column(Float, default=3.0)
    gap_max: Mapped[float] = mapped_column(Float, default=8.0)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


DEFAULT_TIME_ZONE = "UTC"
DEFAULT_GAP = (3.0, 8.0)
