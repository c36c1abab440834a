"""WAHA servers and the WhatsApp sessions tenants run on them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, EncryptedText, JSONType, TenantScoped, TimestampMixin
from portal.models.tenants import Tenant

# WAHA's status spellings (CONTRACT 5.1); unknown values are stored as they come.
SessionStatus = Literal[
    "STOPPED",
    "STARTING",
    "SCAN_QR_CODE",
    "WORKING",
    "FAILED",
    "PASSKEY_REQUIRED",
    "PASSKEY_CONFIRMATION_REQUIRED",
]
SESSION_STATUSES: tuple[SessionStatus, ...] = get_args(SessionStatus)
Engine = Literal["GOWS", "NOWEB", "WEBJS", "WPP"]
ENGINES: tuple[Engine, ...] = get_args(Engine)


def new_uuid() -> str:
    return str(uuid.uuid4())


class WahaServer(TimestampMixin, Base):
    __tablename__ = "waha_servers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    base_url: Mapped[str] = mapped_column(String(255), unique=True)
    api_key: Mapped[str] = mapped_column(EncryptedText)
    capacity: Mapped[int] = mapped_column(Integer, default=50)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    is_draining: Mapped[bool] = mapped_column(Boolean, default=False)
    health: Mapped[str] = mapped_column(String(16), default="unknown")  # ok / down / unknown
    health_error: Mapped[str | None] = mapped_column(String(300))
    last_checked_at: Mapped[datetime | None]
    version: Mapped[str | None] = mapped_column(String(32))
    engine: Mapped[str | None] = mapped_column(String(16))
    tier: Mapped[str | None] = mapped_column(String(16))
    start_timestamp: Mapped[int | None] = mapped_column(BigInteger)  # ms since epoch, as WAHA reports it

    sessions: Mapped[list[WahaSession]] = relationship(back_populates="server")


class WahaSession(TenantScoped, TimestampMixin, Base):
    __tablename__ = "waha_sessions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        UniqueConstraint("server_id", "external_name"),
        Index("ix_waha_sessions_tenant_status", "tenant_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    server_id: Mapped[int] = mapped_column(ForeignKey("waha_servers.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    external_name: Mapped[str] = mapped_column(String(54))
    engine: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32), default="STARTING")
    desired_state: Mapped[str] = mapped_column(String(16), default="running")  # running / stopped
    me: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # key WAHA signs this session's events with; derived per session so one leak opens one session
    hmac_key: Mapped[str] = mapped_column(EncryptedText)
    # Standard Webhooks secret ("whsec_...") signing the portal's deliveries to the session's own webhook_url;
    # shown to the tenant once (create or rotate). NULL on sessions made before it existed: they keep the value
    # derived from WAHA_WEBHOOK_SECRET until rotated (portal/services/session_secrets.py).
    webhook_secret: Mapped[str | None] = mapped_column(EncryptedText)
    last_synced_at: Mapped[datetime | None]
    last_event_at: Mapped[datetime | None]
    status_changed_at: Mapped[datetime | None]
    # why the tenant was told to look at this session (failed / logged_out / needs_qr); cleared once WORKING again
    attention: Mapped[str | None] = mapped_column(String(32))
    attention_since: Mapped[datetime | None]
    # Number health (services/number_health.py): WhatsApp's reach-out timelock and new-chat capping readings,
    # the level they add up to (ok / warning / limited), until when messages to new contacts are refused, and
    # the level the tenant was told of in the current episode.
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    limits_checked_at: Mapped[datetime | None]
    limit_level: Mapped[str | None] = mapped_column(String(16))
    new_contacts_blocked_until: Mapped[datetime | None]
    limit_told: Mapped[str | None] = mapped_column(String(16))
    limit_since: Mapped[datetime | None]

    tenant: Mapped[Tenant] = relationship()
    server: Mapped[WahaServer] = relationship(back_populates="sessions")
