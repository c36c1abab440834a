"""Message DTOs of the /waha API: sends (text, media by URL or inline, uploads), list queries and message answers."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from portal.api.schemas.common import (
    BASE64_PATTERN,
    CURSOR_PATTERN,
    MAX_PAGE,
    MAX_TEXT,
    URL_RULE,
    YEAR_PATTERN,
    Page,
    Request,
    Response,
    check_recipient,
    recipient_field,
    string_rule,
)
from portal.inputs import MAX_YEAR, MIN_YEAR
from portal.services.media import media_kind, outgoing_media
from portal.services.messages.validation import MediaKind

MessageStatus = Literal["PENDING", "SERVER", "DEVICE", "READ", "PLAYED", "ERROR"]
MESSAGE_STATUSES: tuple[MessageStatus, ...] = get_args(MessageStatus)


# ---- requests -------------------------------------------------------------------------------------------------


class MediaDto(Request):
    """A file to send, by URL or inline as base64 (exactly one of url or data; data needs a mimetype)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "oneOf": [
                # the other one absent or null: the server takes exactly one of them
                {
                    "title": "by URL",
                    "required": ["url"],
                    "properties": {"url": {"type": "string"}, "data": {"type": "null"}},
                },
                {
                    "title": "inline",
                    "required": ["data", "mimetype"],
                    "properties": {"data": {"type": "string"}, "mimetype": {"type": "string"}, "url": {"type": "null"}},
                },
            ]
        },
    )

    type: MediaKind = Field(description="image, document, audio or video.")
    url: str | None = Field(
        None,
        max_length=2048,
        description="Public URL WAHA downloads the file from.",
        json_schema_extra=string_rule(**URL_RULE),
    )
    data: str | None = Field(
        None,
        description="The file, base64-encoded (instead of url).",
        json_schema_extra=string_rule(contentEncoding="base64", pattern=BASE64_PATTERN),
    )
    mimetype: str | None = Field(None, max_length=127, examples=["image/jpeg"])
    filename: str | None = Field(None, max_length=255)
    caption: str | None = Field(None, max_length=MAX_TEXT)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise PydanticCustomError("url", "Must be an http:// or https:// URL.")
        return value

    @field_validator("data")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise PydanticCustomError("base64", "Must be base64-encoded file content.") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> MediaDto:
        if (self.url is None) == (self.data is None):
            raise PydanticCustomError("media_source", "Give exactly one of url or data.", {"field": "media.url"})
        if self.data is not None and not self.mimetype:
            raise PydanticCustomError(
                "mimetype", "A mimetype is required with inline data.", {"field": "media.mimetype"}
            )
        return self

    def for_service(self) -> dict[str, Any]:
        """The media dict `services.messages.send_message` takes."""
        return outgoing_media(
            kind=self.type,
            url=self.url,
            data=self.data,
            mimetype=self.mimetype,
            filename=self.filename,
            caption=self.caption,
        )


def _reply_to_rule(schema: dict[str, Any]) -> None:
    """A portal id is a positive 64-bit number; a WhatsApp id is at most 255 characters."""
    for branch in schema.get("anyOf", []):
        if branch.get("type") == "integer":
            branch.update(minimum=1, maximum=2**63 - 1)
        elif branch.get("type") == "string":
            branch.update(minLength=1, maxLength=255)


class SendMessageDto(Request):
    """A text or media message to one chat."""

    # text, media or both: stated in the document as well as checked below
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["text"], "properties": {"text": {"type": "string"}}},
                {"required": ["media"], "properties": {"media": {"type": "object"}}},
            ]
        }
    )

    to: str = recipient_field()
    text: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_TEXT,
        examples=["Hello from the portal"],
        description="The message, or the caption when media is given (not only spaces: "
        "leading and trailing spaces are dropped).",
        json_schema_extra=string_rule(pattern=r"\S"),
    )
    metadata: dict[str, Any] | None = Field(None, description="Your own data, stored with the message.")
    media: MediaDto | None = Field(None, description="A file to send (image, document, audio or video).")
    replyTo: int | str | None = Field(
        None,
        description="The message this one answers, quoted above it: its id in the portal (or its WhatsApp id, "
        "messageId). It must be a message of the same chat.",
        json_schema_extra=_reply_to_rule,
    )

    @field_validator("to")
    @classmethod
    def _recipient(cls, value: str) -> str:
        return check_recipient(value)

    @model_validator(mode="after")
    def _has_content(self) -> SendMessageDto:
        if self.text is None and self.media is None:
            raise PydanticCustomError("content", "Give text, media or both.", {"field": "text"})
        return self


class MediaUploadForm(Request):
    """The form fields beside the uploaded `file` of POST .../send/media."""

    to: str = recipient_field()
    caption: str | None = Field(None, max_length=MAX_TEXT)
    type: MediaKind | None = Field(None, description="Defaults from the file's mimetype.")
    replyTo: str | None = Field(
        None,
        max_length=255,
        description="The message this one answers: its id in the portal (or its WhatsApp id), of the same chat.",
    )

    @field_validator("to")
    @classmethod
    def _recipient(cls, value: str) -> str:
        return check_recipient(value)


class MessageListQuery(Request):
    direction: Literal["in", "out"] | None = Field(None, description="in (received) or out (sent).")
    status: MessageStatus | None = None
    chatId: str | None = Field(None, max_length=128, description="Only this chat (e.g. 491701234567@c.us).")
    q: str | None = Field(None, max_length=200, description="Text search in the message body.")
    since: datetime | None = Field(
        None,
        description="Created at or after (ISO 8601, years 1900-9998).",
        json_schema_extra=string_rule(pattern=YEAR_PATTERN),
    )
    until: datetime | None = Field(
        None,
        description="Created before (ISO 8601, years 1900-9998).",
        json_schema_extra=string_rule(pattern=YEAR_PATTERN),
    )
    cursor: str | None = Field(
        None, max_length=200, pattern=CURSOR_PATTERN, description="nextCursor of the previous page, as given (opaque)."
    )
    limit: int = Field(50, ge=1, le=MAX_PAGE, description="Page size.")

    @field_validator("since", "until")
    @classmethod
    def _calendar(cls, value: datetime | None) -> datetime | None:
        if value is not None and not MIN_YEAR <= value.year <= MAX_YEAR:
            raise PydanticCustomError("date_range", f"Give a date between the years {MIN_YEAR} and {MAX_YEAR}.")
        return value


class TenantMessageListQuery(MessageListQuery):
    sessionId: str | None = Field(None, max_length=36, description="Only this session's messages.")


# ---- responses ------------------------------------------------------------------------------------------------


class MediaInfo(Response):
    kind: str | None = Field(description="image, document, audio or video.")
    mimetype: str | None
    filename: str | None
    caption: str | None
    size: int | None = Field(description="Bytes, when known.")
    status: str | None = Field(description="Received files: pending (being fetched), stored, unavailable or refused.")
    url: str | None = Field(
        description="Where the portal serves the stored file (GET with your bearer token); null until it is stored."
    )


class ReactionInfo(Response):
    emoji: str
    by: str = Field(description='"me" for this WhatsApp account, else the chat id of who reacted.')
    at: datetime | None = Field(description="When the reaction was set, when known.")


def _reactions(raw: Any) -> list[ReactionInfo]:
    found = []
    for by, value in (raw or {}).items():
        entry = value if isinstance(value, dict) else {"text": value}
        if entry.get("text"):
            found.append(ReactionInfo(emoji=str(entry["text"]), by=str(by), at=_when(entry.get("at"))))
    return found


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


class MessageResponse(Response):
    id: int = Field(description="Message id in the portal.")
    messageId: str | None = Field(description="WhatsApp message id (set once WAHA accepted the message).")
    sessionId: str
    direction: Literal["in", "out"]
    chatId: str
    to: str
    text: str | None
    status: str = Field(description="PENDING, SERVER, DEVICE, READ, PLAYED or ERROR.")
    media: MediaInfo | None
    error: str | None
    metadata: dict[str, Any]
    timestamp: datetime
    sentAt: datetime | None
    deliveredAt: datetime | None
    readAt: datetime | None
    playedAt: datetime | None
    failedAt: datetime | None
    replyTo: int | None = Field(description="Portal id of the message this one quotes (replies sent here).")
    editedAt: datetime | None = Field(description="When the text was last edited.")
    deletedAt: datetime | None = Field(description="When the message was deleted for everyone.")
    reactions: list[ReactionInfo] = Field(description="The reactions it has now, one per person.")

    @classmethod
    def of(cls, message: Any, media_url: str | None = None) -> MessageResponse:
        media = None
        if message.media:
            raw = message.media
            kind = raw.get("kind") or (media_kind(raw["mimetype"]) if raw.get("mimetype") else None)
            media = MediaInfo(
                kind=kind,
                mimetype=raw.get("mimetype"),
                filename=raw.get("filename"),
                caption=raw.get("caption"),
                size=raw.get("size"),
                status=raw.get("status"),
                url=media_url,
            )
        return cls(
            id=message.id,
            messageId=message.waha_message_id,
            sessionId=message.session_id,
            direction=message.direction,
            chatId=message.chat_id,
            to=message.chat_id if message.direction == "out" else _own_chat(message),
            text=message.body,
            status=message.status,
            media=media,
            error=message.error,
            metadata=dict(message.extra or {}),
            timestamp=message.created_at,
            sentAt=message.sent_at,
            deliveredAt=message.delivered_at,
            readAt=message.read_at,
            playedAt=message.played_at,
            failedAt=message.failed_at,
            replyTo=message.reply_to_id,
            editedAt=message.edited_at,
            deletedAt=message.revoked_at,
            reactions=_reactions(message.reactions),
        )


def _own_chat(message: Any) -> str:
    me = getattr(message.session, "me", None) or {}
    return str(me.get("id") or "")


class MessagePage(Page[MessageResponse]):
    pass
