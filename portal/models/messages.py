"""One table for inbound and outbound WhatsApp messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, BigId, JSONType, TenantScoped, TimestampMixin
from portal.models.waha import WahaSession

# Delivery ladder; a status only ever moves to a higher rank (ERROR is terminal for a send that failed).
ACK_NAMES = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
STATUS_RANK = {"PENDING": 0, "SERVER": 1, "DEVICE": 2, "READ": 3, "PLAYED": 4, "ERROR": 5}
# An outgoing send whose outcome is not settled yet:
#   sending - a call to WAHA is under way (or its process died during it);
#   unknown - the call ended without an answer (timeout, connection lost after sending, 5xx): WhatsApp may
#             have the message; acks, a lookup by its id or a retry with the same Idempotency-Key settle it;
#   unsent  - provably never reached WhatsApp (no connection, breaker open, WAHA refused): status ERROR, and a
#             retry with the same Idempotency-Key sends it again.
SEND_STATES = ("sending", "unknown", "unsent")
# A send that failed: the condition of the partial index the dashboard counts the day's failures from.
FAILED_SEND = "direction = 'out' AND status = 'ERROR'"


class Message(TenantScoped, TimestampMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("session_id", "waha_message_id"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        # The log's order, and on PostgreSQL the dashboard's counts of the day (direction and status come with the
        # index, so the count reads the index alone where the pages are all-visible).
        Index(
            "ix_messages_tenant_created", "tenant_id", "created_at", "id", postgresql_include=["direction", "status"]
        ),
        # The dashboard's failed sends of the day: failures are few, so the count reads a small index.
        Index(
            "ix_messages_tenant_failed",
            "tenant_id",
            "created_at",
            postgresql_where=sa.text(FAILED_SEND),
            sqlite_where=sa.text(FAILED_SEND),
        ),
        Index("ix_messages_session_created", "session_id", "created_at", "id"),
        Index("ix_messages_session_chat", "session_id", "chat_id", "created_at", "id"),
        Index("ix_messages_send_state", "send_state", "updated_at"),
        # Text search (`q`, a substring, case-insensitive) on PostgreSQL: trigrams find a rare word without reading
        # the tenant's rows. SQLite has no such index and walks the rows newest first (docs/search.md).
        Index(
            "ix_messages_body_trgm",
            "body",
            postgresql_using="gin",
            postgresql_ops={"body": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
        # files still to download from WAHA (the sweeper re-queues them); a handful of rows at any time
        Index(
            "ix_messages_media_pending",
            "id",
            postgresql_where=sa.text("(media ->> 'status') = 'pending'"),
            sqlite_where=sa.text("json_extract(media, '$.status') = 'pending'"),
        ),
        # the replies to a message (deleting it sets their reply_to_id to NULL); few messages are replies
        Index(
            "ix_messages_reply_to",
            "reply_to_id",
            postgresql_where=sa.text("reply_to_id IS NOT NULL"),
            sqlite_where=sa.text("reply_to_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(ForeignKey("waha_sessions.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))  # in / out
    source: Mapped[str] = mapped_column(String(10), default="api")  # api / portal / app (phone) / inbound
    waha_message_id: Mapped[str | None] = mapped_column(String(255))
    chat_id: Mapped[str] = mapped_column(String(128))
    from_me: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str | None] = mapped_column(Text)
    media: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(10), default="PENDING")
    error: Mapped[str | None] = mapped_column(String(500))
    # Where a send stands while its outcome is not settled (see SEND_STATES); NULL once it is.
    send_state: Mapped[str | None] = mapped_column(String(10))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    wa_timestamp: Mapped[int | None] = mapped_column(Integer)  # seconds, as WhatsApp reports
    sent_at: Mapped[datetime | None]
    server_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    played_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    edited_at: Mapped[datetime | None]
    reactions: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # The message this one quotes (a reply), in the same chat; NULL when it quotes nothing or that was deleted.
    reply_to_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("messages.id", ondelete="SET NULL"))

    session: Mapped[WahaSession] = relationship()
