"""The chat list and the team's work on a chat: filters, assignment, resolve and reopen, marking read, the badge.

Lists are keyset-paged newest activity first on (last_activity_at, id) (cursors: portal.pagination); each filter
is written with literal constants so PostgreSQL can use the partial index made for it (models.inbox) even with
a prepared statement. Another tenant's session or chat is simply not found. Every change is audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select, tuple_, update

from portal import pagination, rawsql
from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import CHAT_STATUSES, Chat, Contact, Membership, Tenant, get_for_tenant, utcnow
from portal.services import audit
from portal.services.audit import Actor
from portal.services.contacts import check_page, display_name, like_pattern, search_digits
from portal.services.errors import Invalid, NotFound, ServiceError
from portal.services.messages import actions
from portal.services.sessions import get_session

log = logging.getLogger(__name__)

# The inbox's tabs, each a set of filters (`filters_for_view`).
VIEWS = ("all", "unread", "mine", "unassigned", "resolved")
BADGE_MAX = 100  # the header badge counts up to this ("99+" beyond)
UNSET: Any = object()  # a PATCH field that was not given

_OPEN = Chat.status == sa.literal_column("'open'")
_UNREAD = Chat.unread_count > sa.literal_column("0")


@dataclass(frozen=True)
class ChatFilters:
    """Which chats to list: `assignee` is a user id or "none"; `status` "open" or "resolved"; `q` a name or
    number; `session_id` one session of the tenant."""

    session_id: str | None = None
    unread: bool | None = None
    assignee: int | str | None = None
    status: str | None = None
    q: str | None = None


@dataclass(frozen=True)
class ChatItem:
    """A chat as the inbox shows it: the row, its display name and its contact (avatar), if any."""

    chat: Chat
    name: str
    contact: Contact | None


@dataclass(frozen=True)
class ChatPage:
    items: list[ChatItem]
    next_cursor: str | None


def filters_for_view(view: str, user_id: int | None, *, session_id: str | None = None, q: str | None = None) -> Any:
    """The filters of an inbox tab: all / unread / mine / unassigned are open chats, resolved the others."""
    if view not in VIEWS:
        raise Invalid.field("view", N_f("Choose one of %(value)s.", value=", ".join(VIEWS)))
    if view == "mine" and user_id is None:
        raise Invalid.field("view", N_("Only a member has chats of their own."))
    return ChatFilters(
        session_id=session_id,
        q=q,
        status="resolved" if view == "resolved" else "open",
        unread=True if view == "unread" else None,
        assignee=user_id if view == "mine" else ("none" if view == "unassigned" else None),
    )


def _where(tenant: Tenant, filters: ChatFilters) -> list[Any]:
    if filters.session_id is not None:
        # selected by session alone once it is known to be the tenant's (see messages.reading.list_messages)
        conditions: list[Any] = [Chat.session_id == get_session(tenant, filters.session_id).id]
    else:
        conditions = [Chat.tenant_id == tenant.id]
    if filters.unread is not None:
        conditions.append(_UNREAD if filters.unread else Chat.unread_count == sa.literal_column("0"))
    if filters.assignee == "none":
        conditions.append(Chat.assignee_id.is_(None))
    elif filters.assignee is not None:
        if not isinstance(filters.assignee, int) or isinstance(filters.assignee, bool):
            raise Invalid.field("assignee", N_('Give a user id, "me" or "none".'))
        conditions.append(Chat.assignee_id == filters.assignee)
    if filters.status is not None:
        if filters.status not in CHAT_STATUSES:
            raise Invalid.field("status", N_f("Status must be one of %(value)s.", value=", ".join(CHAT_STATUSES)))
        conditions.append(_OPEN if filters.status == "open" else Chat.status == sa.literal_column("'resolved'"))
    if filters.q:
        found = [Chat.name.ilike(like_pattern(filters.q), escape="\\")]
        digits = search_digits(filters.q)
        if digits:
            found.append(Chat.chat_id.like(f"%{digits}%"))
        conditions.append(sa.or_(*found))
    return conditions


def _items(tenant_id: int, chats: list[Chat]) -> list[ChatItem]:
    """The chats with their contacts (one query) and display names."""
    wanted = {c.chat_id for c in chats}
    contacts = {}
    if wanted:
        stmt = select(Contact).where(Contact.tenant_id == tenant_id, Contact.chat_id.in_(wanted))
        contacts = {c.chat_id: c for c in db.session.scalars(stmt)}
    items = []
    for chat in chats:
        contact = contacts.get(chat.chat_id)
        saved, pushed = (contact.saved_name, contact.push_name) if contact is not None else (None, None)
        items.append(ChatItem(chat=chat, name=display_name(saved, pushed or chat.name, chat.chat_id), contact=contact))
    return items


def list_chats(
    tenant: Tenant, filters: ChatFilters | None = None, *, cursor: str | None = None, limit: int = 50
) -> ChatPage:
    """A page of the tenant's chats, newest activity first; pass `next_cursor` back for the next page."""
    filters = filters or ChatFilters()
    check_page(filters.q, limit)
    stmt = select(Chat).where(*_where(tenant, filters))
    if cursor:
        at, ident = pagination.decode_time_id(cursor)
        stmt = stmt.where(
            tuple_(Chat.last_activity_at, Chat.id)
            < tuple_(sa.literal(at, Chat.last_activity_at.type), sa.literal(ident, Chat.id.type))
        )
    stmt = stmt.order_by(Chat.last_activity_at.desc(), Chat.id.desc()).limit(limit + 1)
    rows = list(db.session.scalars(stmt))
    page = rows[:limit]
    last = page[-1] if page else None
    next_cursor = (
        pagination.encode_time_id(last.last_activity_at, last.id) if last is not None and len(rows) > limit else None
    )
    return ChatPage(items=_items(tenant.id, page), next_cursor=next_cursor)


def find_chat(tenant: Tenant, session_id: Any, chat_id: Any, *, lock: bool = False) -> Chat:
    session = get_session(tenant, session_id)
    chat = None
    if isinstance(chat_id, str) and 0 < len(chat_id) <= 128:
        stmt = select(Chat).where(Chat.session_id == session.id, Chat.chat_id == chat_id)
        chat = db.session.scalar(stmt.with_for_update() if lock else stmt)
    if chat is None:
        raise NotFound(N_("No such chat in this session."), code="chat_not_found")
    return chat


def get_chat(tenant: Tenant, session_id: Any, chat_id: Any) -> ChatItem:
    """One chat of a session of the tenant; NotFound session_not_found / chat_not_found."""
    return _items(tenant.id, [find_chat(tenant, session_id, chat_id)])[0]


def get_chat_by_id(tenant: Tenant, chat_row_id: Any) -> ChatItem:
    """One chat of the tenant by its row id (the inbox's URLs); another tenant's, or an id that cannot be one, is
    NotFound chat_not_found."""
    chat = get_for_tenant(db.session, Chat, tenant.id, chat_row_id)
    if chat is None:
        raise NotFound(N_("No such chat."), code="chat_not_found")
    return _items(tenant.id, [chat])[0]


def _check_member(tenant: Tenant, user_id: Any) -> int:
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise Invalid.field("assignee_id", N_("Give the id of a member of this tenant."))
    member = db.session.scalar(
        select(Membership.id).where(Membership.tenant_id == tenant.id, Membership.user_id == user_id)
    )
    if member is None:
        raise NotFound(
            N_("Chats can be assigned only to members of this tenant."),
            code="member_not_found",
            details={"fields": [{"field": "assignee_id", "message": "Not a member of this tenant."}]},
        )
    return user_id


def audit_chat(chat: Chat, action: str, actor: Actor, details: dict[str, Any] | None = None) -> None:
    """Audit an action on a chat: the chat is the target, its session and WhatsApp chat id lead the details."""
    where = {"session_id": chat.session_id, "chat_id": chat.chat_id}
    audit.record(
        chat.tenant_id, action, actor, target_type="chat", target_id=chat.id, details={**where, **(details or {})}
    )


def update_chat(
    tenant: Tenant, session_id: Any, chat_id: Any, actor: Actor, *, assignee_id: Any = UNSET, status: Any = UNSET
) -> ChatItem:
    """Assign (a member's user id, or None to unassign) and/or resolve or reopen a chat; each change audited.

    Assigning to someone who is not a member of the tenant is refused (404 member_not_found)."""
    if status is not UNSET and status not in CHAT_STATUSES:
        raise Invalid.field("status", N_f("Status must be one of %(value)s.", value=", ".join(CHAT_STATUSES)))
    chat = find_chat(tenant, session_id, chat_id, lock=True)
    if assignee_id is not UNSET and assignee_id is not None:
        assignee_id = _check_member(tenant, assignee_id)
    if assignee_id is not UNSET and assignee_id != chat.assignee_id:
        previous, chat.assignee_id = chat.assignee_id, assignee_id
        action = "chat.unassign" if assignee_id is None else "chat.assign"
        audit_chat(chat, action, actor, {"from": previous, "to": assignee_id})
    if status is not UNSET and status != chat.status:
        chat.status = status
        chat.resolved_at = utcnow() if status == "resolved" else None
        action = "chat.resolve" if status == "resolved" else "chat.reopen"
        audit_chat(chat, action, actor)
    chat.updated_at = utcnow()
    db.session.commit()
    return _items(tenant.id, [chat])[0]


def mark_read(tenant: Tenant, session_id: Any, chat_id: Any, actor: Actor) -> ChatItem:
    """The chat has been read in the portal: its unread count goes to 0 (audited when there was any) and WhatsApp
    is told, so the customer sees blue ticks."""
    chat = find_chat(tenant, session_id, chat_id, lock=True)
    if chat.unread_count:
        audit_chat(chat, "chat.read", actor, {"unread": chat.unread_count})
        chat.unread_count = 0
        chat.updated_at = utcnow()
    db.session.commit()
    try:
        actions.send_read_receipt(tenant, chat.session_id, chat.chat_id)
    except ServiceError as exc:  # the portal's side is done; blue ticks follow when WhatsApp is reachable again
        log.info("read receipt for chat %s not sent: %s", chat.id, exc.code)
    return _items(tenant.id, [chat])[0]


def _badge_statement(anyone: bool) -> sa.Select:
    mine = (
        Chat.assignee_id.is_(None)
        if anyone
        else sa.or_(Chat.assignee_id.is_(None), Chat.assignee_id == sa.bindparam("user_id"))
    )
    capped = (
        select(Chat.id)
        .where(Chat.tenant_id == sa.bindparam("tenant_id"), _UNREAD, _OPEN, mine)
        .limit(BADGE_MAX)
        .subquery()
    )
    return select(sa.func.count()).select_from(capped)


# Every page's header counts this: the statements are built once and run without the ORM.
_BADGE_ANYONE = rawsql.RawStatement(_badge_statement(anyone=True))
_BADGE_MINE = rawsql.RawStatement(_badge_statement(anyone=False))


def badge_count(tenant: Tenant, user_id: int | None) -> int:
    """Open chats with unread messages that are assigned to `user_id` or to nobody, counted up to BADGE_MAX."""
    conn = db.session.connection()
    if user_id is None:
        row = rawsql.first(_BADGE_ANYONE, conn, {"tenant_id": tenant.id})
    else:
        row = rawsql.first(_BADGE_MINE, conn, {"tenant_id": tenant.id, "user_id": user_id})
    return int(row[0] or 0) if row is not None else 0


def unassign_member(tenant_id: int, user_id: int) -> int:
    """A member left the tenant: their chats go back to nobody (in the caller's transaction); how many."""
    result = db.session.execute(
        update(Chat)
        .where(Chat.tenant_id == tenant_id, Chat.assignee_id == user_id)
        .values(assignee_id=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
