"""Internal notes on a chat: written by the team for the team, listed with the chat, never sent to WhatsApp."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from portal import pagination
from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import ChatNote, Tenant
from portal.services.audit import Actor
from portal.services.errors import Invalid
from portal.services.inbox.chats import audit_chat, find_chat

NOTE_MAX = 4096
PAGE_MAX = 200
_CURSOR_PREFIX = "note:"


@dataclass(frozen=True)
class NotePage:
    items: list[ChatNote]
    next_cursor: str | None


def list_notes(
    tenant: Tenant, session_id: Any, chat_id: Any, *, cursor: str | None = None, limit: int = 50
) -> NotePage:
    """The chat's notes, newest first, in pages."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= PAGE_MAX:
        raise Invalid.field("limit", N_f("Limit must be between 1 and %(PAGE_MAX)s.", PAGE_MAX=PAGE_MAX))
    chat = find_chat(tenant, session_id, chat_id)
    stmt = select(ChatNote).where(ChatNote.chat_id == chat.id)
    items, next_cursor = pagination.id_page(db.session, stmt, ChatNote.id, cursor, _CURSOR_PREFIX, limit)
    return NotePage(items=items, next_cursor=next_cursor)


def add_note(tenant: Tenant, session_id: Any, chat_id: Any, actor: Actor, body: Any) -> ChatNote:
    """Add a note to the chat, signed by the actor; audited as "chat.note" (without its text)."""
    if not isinstance(body, str) or not body.strip():
        raise Invalid.field("body", N_("Write the note."))
    body = body.strip()
    if len(body) > NOTE_MAX:
        raise Invalid.field("body", N_f("A note must be at most %(NOTE_MAX)s characters.", NOTE_MAX=NOTE_MAX))
    chat = find_chat(tenant, session_id, chat_id)
    note = ChatNote(
        tenant_id=tenant.id,
        chat_id=chat.id,
        author_id=int(actor.id)
        if actor.type == "user" and actor.id and actor.id.isascii() and actor.id.isdecimal()
        else None,
        author_label=actor.label,
        body=body,
    )
    db.session.add(note)
    db.session.flush()
    audit_chat(chat, "chat.note", actor, {"note_id": note.id})
    db.session.commit()
    return note
