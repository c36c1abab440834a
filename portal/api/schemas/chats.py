"""Inbox DTOs of the /waha API: chats (list queries, the PATCH body, answers), notes, contacts and quick replies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from portal.api.schemas.common import (
    CURSOR_PATTERN,
    MAX_PAGE,
    MAX_TEXT,
    NOT_BLANK,
    PATTERN_MESSAGES,
    PHONE_RULE,
    Page,
    QueryInt,
    Request,
    Response,
    check_phone,
    string_rule,
)
from portal.models.inbox import CHAT_STATUSES, PREVIEW_KINDS
from portal.services.quick_replies import SHORTCUT_PATTERN

ASSIGNEE_PATTERN = r"^([0-9]{1,10}|me|none)$"

# ---- requests -------------------------------------------------------------------------------------------------


class PageQuery(Request):
    cursor: str | None = Field(
        None, max_length=200, pattern=CURSOR_PATTERN, description="nextCursor of the previous page, as given (opaque)."
    )
    limit: QueryInt = Field(50, ge=1, le=MAX_PAGE, description="Page size.")


class ChatListQuery(PageQuery):
    unread: bool | None = Field(None, description="true: only chats with unread messages; false: only read ones.")
    assignee: str | None = Field(
        None,
        pattern=ASSIGNEE_PATTERN,
        description="A member's user id, `me` (the member who created this API token; a credential that acts for "
        "no member has no chats of its own) or `none` (unassigned).",
    )
    status: Literal[CHAT_STATUSES] | None = Field(None, description="open or resolved.")  # type: ignore[valid-type]
    q: str | None = Field(None, max_length=100, description="Search in names and numbers.")


class TenantChatListQuery(ChatListQuery):
    sessionId: str | None = Field(None, max_length=36, description="Only this session's chats.")


class UpdateChatDto(Request):
    """What to change on a chat: give assigneeId (a member's user id; null unassigns), status, or both."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["assigneeId"]}, {"required": ["status"]}]},
    )

    assigneeId: int | None = Field(
        None, ge=1, le=2**31 - 1, description="A member's user id; null unassigns. Needs `chats:manage`."
    )
    # absent: unchanged (null is refused)
    status: Literal[CHAT_STATUSES] = Field(None, description="open (reopen) or resolved.")  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _something(self) -> UpdateChatDto:
        if not self.model_fields_set:
            raise PydanticCustomError("empty", "Give assigneeId, status or both.", {"field": "body"})
        return self


class NoteDto(Request):
    body: str = Field(min_length=1, max_length=MAX_TEXT, pattern=NOT_BLANK, description="The note (team only).")


class NoteListQuery(PageQuery):
    pass


class ContactListQuery(PageQuery):
    q: str | None = Field(None, max_length=100, description="Search in names and numbers.")


class ContactCheckQuery(Request):
    sessionId: str = Field(min_length=1, max_length=36, description="The WORKING session that asks WhatsApp.")
    phone: str = Field(
        min_length=3,
        max_length=40,
        description="A phone number in international form.",
        json_schema_extra=string_rule(**PHONE_RULE),
    )

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        if "@" in value:
            raise PydanticCustomError("phone", "Give a phone number, not a chat id.")
        return check_phone(value)


_SHORTCUT_RULE = "1-40 lower-case letters, digits, - or _, starting with a letter or digit"
PATTERN_MESSAGES[SHORTCUT_PATTERN] = f"Use {_SHORTCUT_RULE}."


class QuickReplyDto(Request):
    shortcut: str = Field(
        pattern=SHORTCUT_PATTERN,
        max_length=40,
        examples=["hours"],
        description=f"What staff type after / in the composer: {_SHORTCUT_RULE}.",
    )
    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT,
        pattern=NOT_BLANK,
        description="The reply; {{name}} and {{phone}} are filled in for the chat it is used in.",
        examples=["Hi {{name}}, we are open 9-17."],
    )


class QuickReplyUpdateDto(Request):
    """Give shortcut, text or both (absent: unchanged)."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["shortcut"]}, {"required": ["text"]}]},
    )

    # absent: unchanged; null is refused (so the document shows no null)
    shortcut: str = Field(  # type: ignore[assignment]  # see above
        None, pattern=SHORTCUT_PATTERN, max_length=40, description=f"{_SHORTCUT_RULE[0].upper()}{_SHORTCUT_RULE[1:]}."
    )
    text: str = Field(None, min_length=1, max_length=MAX_TEXT, pattern=NOT_BLANK)  # type: ignore[assignment]  # see above

    @model_validator(mode="after")
    def _something(self) -> QuickReplyUpdateDto:
        if self.shortcut is None and self.text is None:
            raise PydanticCustomError("empty", "Give shortcut, text or both.", {"field": "body"})
        return self


# ---- responses ------------------------------------------------------------------------------------------------


class LastMessage(Response):
    id: int | None = Field(description="The message's id in the portal (null once it was pruned).")
    kind: Literal[PREVIEW_KINDS] | None = Field(description="text, a media kind, location, vcard or revoked.")  # type: ignore[valid-type]
    text: str | None = Field(description="The text or caption, cut to 200 characters.")
    fromMe: bool | None
    status: str | None = Field(description="Delivery status of a sent message: PENDING ... READ, or ERROR.")
    timestamp: datetime


class ChatResponse(Response):
    id: int = Field(description="The chat's id in the portal.")
    sessionId: str
    chatId: str = Field(description="WhatsApp's chat id, e.g. 491701234567@c.us.")
    name: str = Field(description="Saved contact name, else WhatsApp name, else the formatted number.")
    avatarUrl: str | None = Field(description="The stored profile picture (GET with your bearer token), or null.")
    lastMessage: LastMessage | None
    unreadCount: int
    assigneeId: int | None
    status: Literal[CHAT_STATUSES]  # type: ignore[valid-type]
    updatedAt: datetime

    @classmethod
    def of(cls, item: Any, avatar_url: str | None) -> ChatResponse:
        chat = item.chat
        last = None
        if chat.last_kind is not None:
            last = LastMessage(
                id=chat.last_message_id,
                kind=chat.last_kind,
                text=chat.last_preview,
                fromMe=chat.last_from_me,
                status=chat.last_status,
                timestamp=chat.last_activity_at,
            )
        return cls(
            id=chat.id,
            sessionId=chat.session_id,
            chatId=chat.chat_id,
            name=item.name,
            avatarUrl=avatar_url,
            lastMessage=last,
            unreadCount=chat.unread_count,
            assigneeId=chat.assignee_id,
            status=chat.status,
            updatedAt=chat.updated_at,
        )


class ChatPage(Page[ChatResponse]):
    pass


class NoteResponse(Response):
    id: int
    authorId: int | None = Field(description="The member who wrote it (null for an API token or a removed user).")
    author: str | None = Field(description="Who wrote it, as the audit log names them.")
    body: str
    createdAt: datetime

    @classmethod
    def of(cls, note: Any) -> NoteResponse:
        return cls(
            id=note.id, authorId=note.author_id, author=note.author_label, body=note.body, createdAt=note.created_at
        )


class NotePage(Page[NoteResponse]):
    pass


class ContactResponse(Response):
    id: int
    chatId: str
    phone: str | None = Field(description="International digits, when the chat id is a number.")
    lid: str | None
    name: str = Field(description="Saved name, else WhatsApp name, else the formatted number.")
    pushName: str | None = Field(description="The name the person gave themselves on WhatsApp.")
    avatarUrl: str | None
    tags: list[str]
    exists: bool | None = Field(description="Whether the number is on WhatsApp (null: not known yet).")
    firstMessageAt: datetime | None
    lastMessageAt: datetime | None

    @classmethod
    def of(cls, contact: Any, name: str, avatar_url: str | None) -> ContactResponse:
        return cls(
            id=contact.id,
            chatId=contact.chat_id,
            phone=contact.phone,
            lid=contact.lid,
            name=name,
            pushName=contact.push_name,
            avatarUrl=avatar_url,
            tags=[str(t) for t in (contact.tags or [])],
            exists=contact.wa_exists,
            firstMessageAt=contact.first_message_at,
            lastMessageAt=contact.last_message_at,
        )


class ContactPage(Page[ContactResponse]):
    pass


class ContactCheckResponse(Response):
    exists: bool
    chatId: str | None = Field(description="The chat id to send to; null when the number is not on WhatsApp.")


class QuickReplyResponse(Response):
    id: int
    shortcut: str
    text: str
    createdAt: datetime
    updatedAt: datetime

    @classmethod
    def of(cls, reply: Any) -> QuickReplyResponse:
        return cls(
            id=reply.id,
            shortcut=reply.shortcut,
            text=reply.text,
            createdAt=reply.created_at,
            updatedAt=reply.updated_at,
        )


class QuickReplyList(Response):
    data: list[QuickReplyResponse]
