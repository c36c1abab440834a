"""Webhook events from WAHA, and the tenants' endpoints with their delivery ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, BigId, EncryptedText, JSONType, TenantScoped, TimestampMixin, UTCDateTime, utcnow


class WebhookEvent(Base):
    """An event as WAHA sent it, written before anything is queued."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_status_id", "status", "id"),
        Index("ix_webhook_events_tenant_received", "tenant_id", "received_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    session_id: Mapped[str | None] = mapped_column(ForeignKey("waha_sessions.id", ondelete="SET NULL"), index=True)
    session_name: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # The event exactly as received (JSON text, escapes kept) when `payload` had to be cleaned to be stored:
    # NUL characters and lone surrogates, which PostgreSQL's jsonb and text refuse. Otherwise NULL.
    raw: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending/done/ignored/failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None]


class WebhookEndpoint(TenantScoped, TimestampMixin, Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)  # empty or ["*"] = every event
    secret: Mapped[str] = mapped_column(EncryptedText)  # Standard Webhooks "whsec_..." secret
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class WebhookDelivery(TenantScoped, Base):
    """One attempt to deliver one event to one destination; retries add rows with the same message id."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_webhook_deliveries_msg", "msg_id", "attempt"),
        Index("ix_webhook_deliveries_status_due", "status", "due_at"),
        Index("ix_webhook_deliveries_session", "session_id"),  # a session's delete removes its deliveries
        # the dashboard's failed deliveries of the day: only failed attempts are in it, so it stays small and the
        # send path (rows start as pending) never writes to it
        Index(
            "ix_webhook_deliveries_failed",
            "tenant_id",
            "created_at",
            postgresql_where=sa.text("status IN ('failed', 'dead')"),
            sqlite_where=sa.text("status IN ('failed', 'dead')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("waha_sessions.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    msg_id: Mapped[str] = mapped_column(String(64))  # webhook-id header, stable across attempts
    event_type: Mapped[str] = mapped_column(String(64))
    webhook_event_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_events.id", ondelete="SET NULL"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending/succeeded/failed/dead
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    # a pending attempt is sent at or after due_at (when it was scheduled: now for a first attempt, after the
    # back-off for a retry); a drain batch that claims it holds it until leased_until, so a worker that died
    # mid-batch leaves it to be claimed again once the lease has run out
    due_at: Mapped[datetime | None]
    leased_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]  # when this attempt went out (None: not sent yet, or refused before sending)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
