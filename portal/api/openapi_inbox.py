"""The inbox's part of the /waha route table (chats, notes, contacts, quick replies), its error codes and DTOs;
`portal.api.openapi` puts them into the document."""

from __future__ import annotations

from portal.api import schemas as s
from portal.api.route_table import AUTH, WAHA, ApiRoute, ErrorCode

_C = "/waha/sessions/{session_id}/chats/{chat_id}"

INBOX_ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(404, "chat_not_found", "The session has no chat with that id."),
    ErrorCode(404, "member_not_found", "assigneeId names no member of your tenant (details.fields names the field)."),
    ErrorCode(404, "quick_reply_not_found", "No such quick reply in your tenant."),
    ErrorCode(404, "avatar_not_found", "No such contact in your tenant, or no picture of it is stored."),
    ErrorCode(409, "quick_reply_exists", "Your tenant already has a quick reply with that shortcut."),
    ErrorCode(409, "quick_reply_limit", "Your tenant has as many quick replies as it may keep (500)."),
    ErrorCode(
        422,
        "not_on_whatsapp",
        "WhatsApp says the number has no account, so a message would never arrive; nothing was sent "
        "(checked before the first message to a number, the answer kept for 7 days).",
    ),
)

_LIST = (
    "Newest activity first, in pages; pass nextCursor as ?cursor= for the next one. Filters: unread, assignee "
    "(a member's user id, `me`: the member who created the API token, or `none`), status (open or resolved) "
    "and q (a name or part of a number)."
)

INBOX_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET",
        "/waha/chats",
        "api.list_chats",
        "List the tenant's chats",
        "Inbox",
        "messages:read",
        response=s.ChatPage,
        query=s.TenantChatListQuery,
        errors=(400, *AUTH, 404),
        description="Every session's conversations. " + _LIST + " sessionId narrows to one session.",
    ),
    ApiRoute(
        "GET",
        "/waha/sessions/{session_id}/chats",
        "api.list_session_chats",
        "List a session's chats",
        "Inbox",
        "messages:read",
        response=s.ChatPage,
        query=s.ChatListQuery,
        errors=(400, *AUTH, 404),
        description=_LIST,
    ),
    ApiRoute(
        "PATCH",
        _C,
        "api.update_chat",
        "Assign, resolve or reopen a chat",
        "Inbox",
        "messages:send",
        response=s.ChatResponse,
        body=s.UpdateChatDto,
        errors=(400, *AUTH, 404),
        description="status resolves or reopens the chat (a new message from the customer reopens it too). "
        "assigneeId assigns it to a member of the tenant (null unassigns) and needs `chats:manage` as well "
        "(operators, admins and owners have it). Audited as chat.assign / chat.unassign / chat.resolve / "
        "chat.reopen.",
        example={"status": "resolved"},
    ),
    ApiRoute(
        "POST",
        f"{_C}/read",
        "api.mark_chat_read",
        "Mark a chat read",
        "Inbox",
        "messages:send",
        response=s.ChatResponse,
        errors=(*AUTH, 404),
        description="Sets the chat's unread count to 0 (audited as chat.read when it had unread messages).",
    ),
    ApiRoute(
        "GET",
        f"{_C}/notes",
        "api.list_chat_notes",
        "List a chat's notes",
        "Inbox",
        "messages:read",
        response=s.NotePage,
        query=s.NoteListQuery,
        errors=(400, *AUTH, 404),
        description="Internal notes of the team, newest first; they are never sent to WhatsApp.",
    ),
    ApiRoute(
        "POST",
        f"{_C}/notes",
        "api.add_chat_note",
        "Add a note to a chat",
        "Inbox",
        "messages:send",
        ok=201,
        response=s.NoteResponse,
        body=s.NoteDto,
        errors=(400, *AUTH, 404),
        description="An internal note for the team; never sent to WhatsApp. Audited as chat.note.",
        example={"body": "Customer prefers calls after 5 pm."},
    ),
    ApiRoute(
        "GET",
        "/waha/contacts",
        "api.list_contacts",
        "List contacts",
        "Inbox",
        "messages:read",
        response=s.ContactPage,
        query=s.ContactListQuery,
        errors=(400, *AUTH),
        description="The people your sessions talk to, newest first, in pages; q searches names and numbers.",
    ),
    ApiRoute(
        "GET",
        "/waha/contacts/check",
        "api.check_contact",
        "Is a number on WhatsApp?",
        "Inbox",
        "messages:read",
        response=s.ContactCheckResponse,
        query=s.ContactCheckQuery,
        errors=(400, *AUTH, 404, *WAHA),
        description="Asks WhatsApp through the session (which must be WORKING) unless an answer younger than 7 "
        "days is stored; the answer is kept on the contact. Sends check a new number the same way.",
    ),
    ApiRoute(
        "GET",
        "/waha/contacts/{contact_id}/avatar",
        "api.contact_avatar",
        "Download a contact's picture",
        "Inbox",
        "messages:read",
        binary=True,
        errors=(*AUTH, 404, 416, 503),
        description="The contact's WhatsApp profile picture as the portal stored it (a chat's avatarUrl).",
    ),
    ApiRoute(
        "GET",
        "/waha/quick-replies",
        "api.list_quick_replies",
        "List quick replies",
        "Inbox",
        "messages:read",
        response=s.QuickReplyList,
        errors=AUTH,
        description="The tenant's saved answers, by shortcut, in one page.",
    ),
    ApiRoute(
        "POST",
        "/waha/quick-replies",
        "api.create_quick_reply",
        "Add a quick reply",
        "Inbox",
        "quick_replies:manage",
        ok=201,
        response=s.QuickReplyResponse,
        body=s.QuickReplyDto,
        errors=(400, *AUTH, 409),
        description="{{name}} and {{phone}} in the text are filled in for the chat it is used in.",
        example={"shortcut": "hours", "text": "Hi {{name}}, we are open 9-17."},
    ),
    ApiRoute(
        "PATCH",
        "/waha/quick-replies/{reply_id}",
        "api.update_quick_reply",
        "Change a quick reply",
        "Inbox",
        "quick_replies:manage",
        response=s.QuickReplyResponse,
        body=s.QuickReplyUpdateDto,
        errors=(400, *AUTH, 404, 409),
        example={"text": "Hi {{name}}, we are open 8-18."},
    ),
    ApiRoute(
        "DELETE",
        "/waha/quick-replies/{reply_id}",
        "api.delete_quick_reply",
        "Delete a quick reply",
        "Inbox",
        "quick_replies:manage",
        ok=204,
        errors=(*AUTH, 404),
    ),
)

INBOX_MODELS = (
    s.ChatPage,
    s.ChatResponse,
    s.LastMessage,
    s.UpdateChatDto,
    s.NoteDto,
    s.NotePage,
    s.NoteResponse,
    s.ContactPage,
    s.ContactResponse,
    s.ContactCheckResponse,
    s.QuickReplyDto,
    s.QuickReplyUpdateDto,
    s.QuickReplyResponse,
    s.QuickReplyList,
)
