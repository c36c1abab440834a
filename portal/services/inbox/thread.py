"""One chat as the inbox's thread pane shows it: the chat by its row id, pages of its messages (newest page
first, older ones on scroll), what changed since the last look (new messages, acks, reactions, edits, deletes),
the messages replies quote, what may be done with each message and where a message may be forwarded.

Everything is read through the tenant: another tenant's chat or message is simply not found. The actions
themselves (react, edit, delete, forward, send) are in services.messages; the windows they enforce are the ones
`allowed_actions` reports, so a button is never offered that the service would refuse for its age.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import literal, select, tuple_

from portal import pagination
from portal.extensions import db
from portal.i18n import N_
from portal.models import Chat, Message, Tenant, get_for_tenant, utcnow
from portal.services.errors import NotFound
from portal.services.inbox.chats import ChatFilters, ChatItem, list_chats
from portal.services.messages.actions import DELETE_WINDOW, EDIT_WINDOW, _sent_at
from portal.services.messages.reading import list_messages

THREAD_PAGE = 40
CHANGES_LIMIT = 200
# Rows are stamped when they are written and committed a moment later: each look starts this much before the
# previous one began, so nothing committed late is missed (a row seen twice is simply the same row again).
CHANGES_OVERLAP = timedelta(seconds=5)
FORWARD_TARGETS = 50


@dataclass(frozen=True)
class ThreadPage:
    """Messages of a chat oldest first; `older` is the cursor of the page before (None: this is the start)."""

    messages: list[Message]
    older: str | None
    oldest: str | None  # cursor of the oldest message shown: changes are looked for from there on
    quoted: dict[int, Message]


@dataclass(frozen=True)
class ThreadChanges:
    """Messages of a chat written since a moment (new or changed), oldest first, and where the next look starts."""

    messages: list[Message]
    next_since: datetime
    quoted: dict[int, Message]
    overflow: bool


def message_in_chat(tenant: Tenant, chat: Chat, message_id: Any) -> Message:
    """One message of this chat; NotFound message_not_found for another chat's (or another tenant's)."""
    message = get_for_tenant(db.session, Message, tenant.id, message_id)
    if message is None or (message.session_id, message.chat_id) != (chat.session_id, chat.chat_id):
        raise NotFound(N_("No such message in this chat."), code="message_not_found")
    return message


def thread_page(tenant: Tenant, chat: Chat, *, before: str | None = None, limit: int = THREAD_PAGE) -> ThreadPage:
    """The newest page of the chat's messages (or the page before the cursor `before`), oldest first.
    Invalid (field "cursor") for a cursor that was not made here."""
    page = list_messages(tenant, session_id=chat.session_id, chat_id=chat.chat_id, cursor=before, limit=limit)
    messages = list(reversed(page.items))
    oldest = pagination.encode_time_id(messages[0].created_at, messages[0].id) if messages else None
    return ThreadPage(messages=messages, older=page.next_cursor, oldest=oldest, quoted=quoted_messages(messages))


def thread_changes(tenant: Tenant, chat: Chat, *, since: datetime, oldest: str | None = None) -> ThreadChanges:
    """Messages of the chat created or changed since `since` (acks, reactions, edits and deletes change a row),
    from the oldest message on screen (the cursor `oldest`) on, oldest first. Invalid for a bad cursor."""
    started = utcnow()
    stmt = select(Message).where(
        Message.session_id == chat.session_id, Message.chat_id == chat.chat_id, Message.updated_at >= since
    )
    if oldest:
        created_at, ident = pagination.decode_time_id(oldest)
        stmt = stmt.where(tuple_(Message.created_at, Message.id) >= tuple_(literal(created_at), literal(ident)))
    else:
        stmt = stmt.where(Message.created_at >= since)
    rows = list(db.session.scalars(stmt.order_by(Message.created_at, Message.id).limit(CHANGES_LIMIT + 1)))
    messages = rows[:CHANGES_LIMIT]
    return ThreadChanges(
        messages=messages,
        next_since=started - CHANGES_OVERLAP,
        quoted=quoted_messages(messages),
        overflow=len(rows) > CHANGES_LIMIT,
    )


def quoted_messages(messages: list[Message]) -> dict[int, Message]:
    """The message each reply quotes, by the reply's id: the stored link (`reply_to_id`), else for replies that
    came from WhatsApp the quoted WhatsApp id (extra.waha.reply_to) looked up in the same session."""
    by_id = {m.id: m for m in messages}
    wanted = {m.reply_to_id for m in messages if m.reply_to_id and m.reply_to_id not in by_id}
    found = dict(by_id)
    if wanted:
        found.update({m.id: m for m in db.session.scalars(select(Message).where(Message.id.in_(wanted)))})
    quoted = {m.id: found[m.reply_to_id] for m in messages if m.reply_to_id and m.reply_to_id in found}
    by_waha: dict[tuple[str, str], list[Message]] = {}
    for m in messages:
        waha_reply = ((m.extra or {}).get("waha") or {}).get("reply_to")
        if m.id not in quoted and isinstance(waha_reply, str) and waha_reply:
            by_waha.setdefault((m.session_id, waha_reply), []).append(m)
    for session_id in {key[0] for key in by_waha}:
        ids = [key[1] for key in by_waha if key[0] == session_id]
        stmt = select(Message).where(Message.session_id == session_id, Message.waha_message_id.in_(ids))
        for original in db.session.scalars(stmt):
            for reply in by_waha.get((session_id, original.waha_message_id or ""), []):
                if original.tenant_id == reply.tenant_id:
                    quoted[reply.id] = original
    return quoted


def allowed_actions(message: Message, now: datetime | None = None) -> frozenset[str]:
    """What WhatsApp still lets this account do with the message: "react", "reply", "forward" on anything it
    has; "edit" (text, own, within EDIT_WINDOW) and "delete" (own, within DELETE_WINDOW)."""
    if message.revoked_at is not None or not message.waha_message_id or message.status == "ERROR":
        return frozenset()
    allowed = {"react", "reply", "forward"}
    age = (now or utcnow()) - _sent_at(message)
    if message.from_me:
        if message.media is None and age <= EDIT_WINDOW:
            allowed.add("edit")
        if age <= DELETE_WINDOW:
            allowed.add("delete")
    return frozenset(allowed)


def forward_targets(tenant: Tenant, chat: Chat) -> list[ChatItem]:
    """The chats a message of `chat` can be forwarded to: WAHA forwards from the account's own store, so those
    of the same session, most recently active first (the chat itself excluded)."""
    page = list_chats(tenant, ChatFilters(session_id=chat.session_id), limit=FORWARD_TARGETS)
    return [item for item in page.items if item.chat.id != chat.id]
