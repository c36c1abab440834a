"""Campaigns (one message template sent to an audience through the send queue) and the opt-out list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, BigId, JSONType, TenantScoped, TimestampMixin, UTCDateTime, utcnow

# importing - the audience is being read and validated (a job); nothing else exists yet
# draft     - audience ready, not started; scheduled - started, waiting for its start time
# checking  - numbers are being checked with WhatsApp; running - recipients are in the send queue
# paused, completed, cancelled; failed - the import could not be read at all (the reason is on the row)
CAMPAIGN_STATES = (
    "importing",
    "draft",
    "scheduled",
    "checking",
    "running",
    "paused",
    "completed",
    "cancelled",
    "failed",
)
# A recipient: pending (not checked yet), queued (in the send queue), sent, failed, skipped (not on
# WhatsApp, cancelled...), opted_out. Delivered / read / replied are read from the message and the chat.
RECIPIENT_STATES = ("pending", "queued", "sent", "failed", "skipped", "opted_out")


class OptOut(TenantScoped, Base):
    """A number the tenant must not send campaigns or scheduled messages to (the suppression list)."""

    __tablename__ = "opt_outs"
    __table_args__ = (UniqueConstraint("tenant_id", "chat_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(10))  # keyword / manual / import
    note: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OptOutSettings(Base):
    """A tenant's opt-out keywords and confirmation reply; no row means the defaults."""

    __tablename__ = "opt_out_settings"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    keywords: Mapped[list[str]] = mapped_column(JSONType, default=list)
    confirm: Mapped[bool] = mapped_column(Boolean, default=False)
    confirm_text: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Campaign(TenantScoped, TimestampMixin, Base):
    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(10), default="importing")
    session_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    template: Mapped[str] = mapped_column(Text)
    variables: Mapped[list[str]] = mapped_column(JSONType, default=list)  # the audience's variable columns
    media: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    audience: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # {"kind": "csv"|"tag", ...}
    start_at: Mapped[datetime | None]
    quiet_start: Mapped[int | None] = mapped_column(Integer)  # minute of the day (UTC)
    quiet_end: Mapped[int | None] = mapped_column(Integer)
    daily_cap: Mapped[int | None] = mapped_column(Integer)  # sends per session per UTC day
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[int] = mapped_column(Integer, default=0)  # rows read or numbers checked, for the bar
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(254))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class CampaignRecipient(Base):
    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "chat_id"),
        Index("ix_campaign_recipients_state", "campaign_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaigns.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)  # the CSV line (1 = header), or the position in the tag audience
    chat_id: Mapped[str] = mapped_column(String(128))
    values: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    session_id: Mapped[str | None] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(10), default="pending")
    reason: Mapped[str | None] = mapped_column(String(40))
    message_id: Mapped[int | None] = mapped_column(BigId)
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class CampaignReject(Base):
    """An audience row that was not accepted, with its line and why (the downloadable error report)."""

    __tablename__ = "campaign_rejects"
    __table_args__ = (Index("ix_campaign_rejects_campaign", "campaign_id", "line"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaigns.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    phone: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(String(200))
