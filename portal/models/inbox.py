"""The shared inbox: one row per conversation (`chats`, kept up to date by event processing and sends), the
people a tenant talks to (`contacts`), internal notes on a chat and the tenant's quick replies.

`chats` is what the inbox lists: newest activity first, keyset-paged, filtered by unread / assignee / status.
Each filter has an index that matches its WHERE and ORDER BY (partial where PostgreSQL benefits), so a page deep
in a list of 100,000 chats costs what the first page costs. See docs/architecture.md, "Inbox".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, BigId, JSONType, TenantScoped, TimestampMixin, UTCDateTime, utcnow

CHAT_STATUSES = ("open", "resolved")
# What the last message was, for the preview line: its text is the body or the caption.
PREVIEW_KINDS = ("text", "image", "video", "audio", "document", "location", "vcard", "revoked")
PREVIEW_MAX = 200
# Contact avatars: never tried (NULL), stored in portal storage, none on WhatsApp, or the fetch failed.
AVATAR_STATES = ("stored", "none", "failed")


def _partial(condition: str) -> dict[str, Any]:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


class Chat(TenantScoped, TimestampMixin, Base):
    """A conversation of one session with one WhatsApp chat (a person, a group, a linked id)."""

    __tablename__ = "chats"
    __table_args__ = (
        UniqueConstraint("session_id", "chat_id"),
        # the list, newest activity first: whole tenant, one session, and each filter of the inbox
        Index("ix_chats_tenant_activity", "tenant_id", "last_activity_at", "id"),
        Index("ix_chats_session_activity", "session_id", "last_activity_at", "id"),
        Index("ix_chats_open", "tenant_id", "last_activity_at", "id", **_partial("status = 'open'")),
        Index("ix_chats_unread", "tenant_id", "last_activity_at", "id", **_partial("unread_count > 0")),
        Index(
            "ix_chats_assignee",
            "tenant_id",
            "assignee_id",
            "last_activity_at",
            "id",
            **_partial("assignee_id IS NOT NULL"),
        ),
        Index(
            "ix_chats_unassigned",
            "tenant_id",
            "last_activity_at",
            "id",
            **_partial("assignee_id IS NULL AND status = 'open'"),
        ),
        # acks, edits and revokes find the chat whose preview shows their message; a pruned message unlinks
        Index("ix_chats_last_message", "last_message_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(ForeignKey("waha_sessions.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(128))
    # saved contact name or WhatsApp push name, as last seen (the display rule: services.contacts.display_name)
    name: Mapped[str | None] = mapped_column(String(200))
    last_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_preview: Mapped[str | None] = mapped_column(String(PREVIEW_MAX))
    last_kind: Mapped[str | None] = mapped_column(String(16))
    last_from_me: Mapped[bool | None] = mapped_column(Boolean)
    last_status: Mapped[str | None] = mapped_column(String(10))
    unread_count: Mapped[int] = mapped_column(Integer, default=0)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(10), default="open")
    resolved_at: Mapped[datetime | None]


class Contact(TenantScoped, TimestampMixin, Base):
    """Someone a tenant talks to, once per tenant whichever session they write to."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "chat_id"),
        Index("ix_contacts_tenant", "tenant_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(128))  # 491701234567@c.us, or ...@lid
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164 digits, when known
    lid: Mapped[str | None] = mapped_column(String(64))
    saved_name: Mapped[str | None] = mapped_column(String(200))
    push_name: Mapped[str | None] = mapped_column(String(200))
    avatar_key: Mapped[str | None] = mapped_column(String(255))  # portal storage key
    avatar_state: Mapped[str | None] = mapped_column(String(10))
    avatar_fetched_at: Mapped[datetime | None]
    first_message_at: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # WhatsApp's answer to check-exists (or an inbound message, which proves it); None while unknown
    wa_exists: Mapped[bool | None] = mapped_column(Boolean)
    exists_checked_at: Mapped[datetime | None]


class ChatNote(Base):
    """An internal note on a chat, for the team only: never sent to WhatsApp."""

    __tablename__ = "chat_notes"
    __table_args__ = (Index("ix_chat_notes_chat_created", "chat_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int] = mapped_column(BigId, ForeignKey("chats.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_label: Mapped[str | None] = mapped_column(String(254))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class QuickReply(TenantScoped, TimestampMixin, Base):
    """A saved answer of the tenant, inserted by its shortcut; `{{name}}` and `{{phone}}` are filled in."""

    __tablename__ = "quick_replies"
    __table_args__ = (UniqueConstraint("tenant_id", "shortcut"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    shortcut: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
