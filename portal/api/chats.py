"""The inbox over the API: chats (/waha/chats, /waha/sessions/<id>/chats/...), their notes, contacts and quick
replies. Reading needs messages:read, acting messages:send, assigning also chats:manage; quick replies are
managed with quick_replies:manage."""

from __future__ import annotations

from typing import Any

from flask import Response, g

from portal.api import bp
from portal.api.auth import api_route, forbid
from portal.api.common import actor, dto_field_names, json_body, query, send, tenant
from portal.api.schemas import (
    ChatListQuery,
    ChatPage,
    ChatResponse,
    ContactCheckQuery,
    ContactCheckResponse,
    ContactListQuery,
    ContactPage,
    ContactResponse,
    NoteDto,
    NoteListQuery,
    NotePage,
    NoteResponse,
    QuickReplyDto,
    QuickReplyList,
    QuickReplyResponse,
    QuickReplyUpdateDto,
    TenantChatListQuery,
    UpdateChatDto,
)
from portal.converters import parse_id
from portal.extensions import db
from portal.models import ApiToken, Membership
from portal.services import avatars, contacts, inbox, quick_replies
from portal.storage.serving import send_stored

MANAGE = "chats:manage"
_FIELDS = {"assignee_id": "assigneeId", "assignee": "assignee"}


def _chat(item: inbox.ChatItem) -> ChatResponse:
    return ChatResponse.of(item, avatars.avatar_url(item.contact))


def _me() -> int | None:
    """The member an API token acts for: the one who created it, while they are a member of the tenant (None for
    a JWT or a token made on the command line)."""
    principal = g.principal
    if principal.kind != "token":
        return None
    user_id = db.session.scalar(
        db.select(ApiToken.created_by_id)
        .join(Membership, Membership.user_id == ApiToken.created_by_id)
        .where(ApiToken.id == int(principal.actor_id), Membership.tenant_id == principal.tenant.id)
    )
    return None if user_id is None else int(user_id)


def _chat_page(filters: ChatListQuery, session_id: str | None) -> Response:
    assignee: Any = filters.assignee
    if assignee == "me":
        assignee = _me()
    elif assignee is not None and assignee != "none":
        assignee = parse_id(assignee)  # an id no user can have (0, beyond the column's range) is nobody's
    if filters.assignee is not None and assignee is None:  # nobody: no member, so no chats of their own
        return send(ChatPage(data=[], nextCursor=None))
    wanted = inbox.ChatFilters(
        session_id=session_id, unread=filters.unread, assignee=assignee, status=filters.status, q=filters.q
    )
    with dto_field_names(_FIELDS):
        page = inbox.list_chats(tenant(), wanted, cursor=filters.cursor, limit=filters.limit)
    return send(ChatPage(data=[_chat(item) for item in page.items], nextCursor=page.next_cursor))


@bp.get("/chats")
@api_route("messages:read")
def list_chats() -> Response:
    filters = query(TenantChatListQuery)
    return _chat_page(filters, filters.sessionId)


@bp.get("/sessions/<session_id>/chats")
@api_route("messages:read")
def list_session_chats(session_id: str) -> Response:
    return _chat_page(query(ChatListQuery), session_id)


@bp.patch("/sessions/<session_id>/chats/<chat_id>")
@api_route("messages:send")
def update_chat(session_id: str, chat_id: str) -> Response:
    dto = json_body(UpdateChatDto)
    changes: dict[str, Any] = {}
    if "assigneeId" in dto.model_fields_set:
        if not g.principal.can(MANAGE):
            return forbid(g.principal, MANAGE)
        changes["assignee_id"] = dto.assigneeId
    if dto.status is not None:
        changes["status"] = dto.status
    with dto_field_names(_FIELDS):
        item = inbox.update_chat(tenant(), session_id, chat_id, actor(), **changes)
    return send(_chat(item))


@bp.post("/sessions/<session_id>/chats/<chat_id>/read")
@api_route("messages:send")
def mark_chat_read(session_id: str, chat_id: str) -> Response:
    return send(_chat(inbox.mark_read(tenant(), session_id, chat_id, actor())))


@bp.get("/sessions/<session_id>/chats/<chat_id>/notes")
@api_route("messages:read")
def list_chat_notes(session_id: str, chat_id: str) -> Response:
    filters = query(NoteListQuery)
    page = inbox.list_notes(tenant(), session_id, chat_id, cursor=filters.cursor, limit=filters.limit)
    return send(NotePage(data=[NoteResponse.of(n) for n in page.items], nextCursor=page.next_cursor))


@bp.post("/sessions/<session_id>/chats/<chat_id>/notes")
@api_route("messages:send")
def add_chat_note(session_id: str, chat_id: str) -> Response:
    dto = json_body(NoteDto)
    return send(NoteResponse.of(inbox.add_note(tenant(), session_id, chat_id, actor(), dto.body)), 201)


# ---- contacts -------------------------------------------------------------------------------------------------


@bp.get("/contacts")
@api_route("messages:read")
def list_contacts() -> Response:
    filters = query(ContactListQuery)
    page = contacts.list_contacts(tenant(), q=filters.q, cursor=filters.cursor, limit=filters.limit)
    data = [ContactResponse.of(c, contacts.name_of(c), avatars.avatar_url(c)) for c in page.items]
    return send(ContactPage(data=data, nextCursor=page.next_cursor))


@bp.get("/contacts/check")
@api_route("messages:read")
def check_contact() -> Response:
    asked = query(ContactCheckQuery)
    with dto_field_names({"phone": "phone", "session_id": "sessionId"}):
        result = contacts.check_exists(tenant(), asked.sessionId, asked.phone)
    return send(ContactCheckResponse(exists=result.exists, chatId=result.chat_id))


@bp.get("/contacts/<contact_id>/avatar")
@api_route("messages:read")
def contact_avatar(contact_id: str) -> Response:
    stored = avatars.avatar_file(tenant(), contact_id)
    response = send_stored(
        stored, as_attachment=False, missing=avatars.avatar_gone(), cache_control="private, max-age=3600"
    )
    return response


# ---- quick replies --------------------------------------------------------------------------------------------


@bp.get("/quick-replies")
@api_route("messages:read")
def list_quick_replies() -> Response:
    return send(QuickReplyList(data=[QuickReplyResponse.of(r) for r in quick_replies.list_replies(tenant())]))


@bp.post("/quick-replies")
@api_route("quick_replies:manage")
def create_quick_reply() -> Response:
    dto = json_body(QuickReplyDto)
    reply = quick_replies.create_reply(tenant(), actor(), shortcut=dto.shortcut, text=dto.text)
    return send(QuickReplyResponse.of(reply), 201)


@bp.patch("/quick-replies/<reply_id>")
@api_route("quick_replies:manage")
def update_quick_reply(reply_id: str) -> Response:
    dto = json_body(QuickReplyUpdateDto)
    reply = quick_replies.update_reply(tenant(), reply_id, actor(), shortcut=dto.shortcut, text=dto.text)
    return send(QuickReplyResponse.of(reply))


@bp.delete("/quick-replies/<reply_id>")
@api_route("quick_replies:manage")
def delete_quick_reply(reply_id: str) -> Response:
    quick_replies.delete_reply(tenant(), reply_id, actor())
    return Response(status=204)
