"""Message DTOs of the /waha API: sends (text, media by URL or inline, uploads), list queries and message answers."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from portal.api.schemas.common import (
    BASE64_PATTERN,
    CURSOR_PATTERN,
    DATE_TIME_PATTERN,
    FILENAME_PATTERN,
    MAX_PAGE,
    MAX_TEXT,
    MIMETYPE_PATTERN,
    NOT_BLANK,
    URL_PATTERN,
    URL_RULE,
    Page,
    QueryDateTime,
    QueryInt,
    Request,
    Response,
    check_recipient,
    recipient_field,
    string_rule,
)
from portal.api.schemas.scheduled import SEND_AT_DOC, SendTime
from portal.api.schemas.send_rules import EXTENSIONS_DOC, TEXT_WITH_MEDIA, media_kinds
from portal.inputs import MAX_YEAR, MIN_YEAR
from portal.services.media import media_kind, outgoing_media
from portal.services.messages.validation import (
    CAPTION_MAX,
    METADATA_MAX_ENTRIES,
    METADATA_NAME_MAX,
    METADATA_VALUE_MAX,
    MediaKind,
)

MessageStatus = Literal["PENDING", "SERVER", "DEVICE", "READ", "PLAYED", "ERROR"]
MESSAGE_STATUSES: tuple[MessageStatus, ...] = get_args(MessageStatus)


# ---- requests -------------------------------------------------------------------------------------------------


_FLOAT_MAX = 1.7976931348623157e308
# A value of a message's metadata: text, a whole number within 64 bits, another finite number, or true/false.
MetadataValue = (
    Annotated[str, Field(max_length=METADATA_VALUE_MAX)]
    | Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
    | Annotated[float, Field(ge=-_FLOAT_MAX, le=_FLOAT_MAX, allow_inf_nan=False)]
    | bool
)


class MediaDto(Request):
    """A file to send, by URL or inline as base64 (exactly one of url or data; data needs a mimetype)."""

    model_config = ConfigDict(
        extra="forbid",
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
            ],
            "anyOf": media_kinds(),
        },
    )

    type: MediaKind = Field(description="image, document, audio or video.")
    url: str | None = Field(
        None,
        max_length=2048,
        pattern=URL_PATTERN,
        description="Public URL WAHA downloads the file from.",
        json_schema_extra=string_rule(format=URL_RULE["format"]),
    )
    data: str | None = Field(
        None,
        pattern=BASE64_PATTERN,
        description="The file, base64-encoded (instead of url).",
        json_schema_extra=string_rule(contentEncoding="base64"),
    )
    mimetype: str | None = Field(
        None,
        max_length=127,
        pattern=MIMETYPE_PATTERN,
        examples=["image/jpeg"],
        description="The file's media type (type/subtype, parameters after ';' allowed). Required with data. "
        f"With url it follows from the extension of filename, else of the URL's path: {EXTENSIONS_DOC}; a "
        "document takes any type its extension names (programs are refused), else application/octet-stream.",
    )
    filename: str | None = Field(
        None, max_length=255, pattern=FILENAME_PATTERN, description="A plain name (no / or \\\\)."
    )
    caption: str | None = Field(
        None,
        max_length=CAPTION_MAX,
        description="Shown under the file (blank: none). Audio (voice messages) takes no caption.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> MediaDto:
        if (self.url is None) == (self.data is None):
            raise PydanticCustomError("media_source", "Give exactly one of url or data.", {"field": "media.url"})
        if self.data is not None and self.mimetype is None:
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


_ID_MAX = 2**63 - 1


def _reply_to_rule(schema: dict[str, Any]) -> None:
    """A portal id is a positive 64-bit number; a WhatsApp id is at most 255 characters and not blank."""
    for branch in schema.get("anyOf", []):
        if branch.get("type") == "integer":
            branch.update(minimum=1, maximum=_ID_MAX)
        elif branch.get("type") == "string":
            branch.update(maxLength=255, pattern=NOT_BLANK)


def check_reply_to(value: Any) -> Any:
    """The rule `_reply_to_rule` states, on the value as sent (true/false is no id)."""
    if isinstance(value, bool) or (isinstance(value, int) and not 1 <= value <= _ID_MAX):
        raise PydanticCustomError("reply_to", "Give the id of a message: a portal id or a WhatsApp message id.")
    if isinstance(value, str) and (len(value) > 255 or not re.fullmatch(NOT_BLANK, value)):
        raise PydanticCustomError("reply_to", "Give the id of a message: not blank, at most 255 characters.")
    return value


class SendMessageDto(Request):
    """A text or media message to one chat."""

    # text, media or both: stated in the document as well as checked below
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {
                    "anyOf": [
                        {"required": ["text"], "properties": {"text": {"type": "string"}}},
                        {"required": ["media"], "properties": {"media": {"type": "object"}}},
                    ]
                },
                {"anyOf": TEXT_WITH_MEDIA},
                # sent later (sendAt): no metadata and no opt-out override (checked in _has_content too)
                {
                    "anyOf": [
                        {"not": {"required": ["sendAt"]}},
                        {"properties": {"sendAt": {"type": "null"}}},
                        {
                            "properties": {
                                "metadata": {"anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}]},
                                "ignoreOptOut": {"const": False},
                            }
                        },
                    ]
                },
            ],
        }
    )

    to: str = recipient_field()
    text: str | None = Field(
        None,
        max_length=MAX_TEXT,
        pattern=NOT_BLANK,
        examples=["Hello from the portal"],
        description="The message, or the caption when media is given (not only spaces: "
        "leading and trailing spaces are dropped).",
    )
    metadata: dict[Annotated[str, Field(min_length=1, max_length=METADATA_NAME_MAX)], MetadataValue] | None = Field(
        None,
        max_length=METADATA_MAX_ENTRIES,
        description=f"Your own data, stored with the message: at most {METADATA_MAX_ENTRIES} names, each with a text "
        f"(at most {METADATA_VALUE_MAX} characters), a number or true/false; each name 1-{METADATA_NAME_MAX} "
        "characters.",
    )
    media: MediaDto | None = Field(None, description="A file to send (image, document, audio or video).")
    replyTo: int | str | None = Field(
        None,
        description="The message this one answers, quoted above it: its id in the portal (or its WhatsApp id, "
        "messageId). It must be a message of the same chat.",
        json_schema_extra=_reply_to_rule,
    )
    sendAt: SendTime = Field(
        None,
        description=SEND_AT_DOC + " Not with metadata or ignoreOptOut (400).",
        json_schema_extra=string_rule(pattern=DATE_TIME_PATTERN),
    )
    ignoreOptOut: bool = Field(
        False,
        description="Send even though the recipient is on your opt-out list (otherwise 409 recipient_opted_out). "
        "Only for callers with messages:send whose role is owner or admin (a token: the member who created it); "
        "others get 403. Audited with the send.",
    )

    @field_validator("to")
    @classmethod
    def _recipient(cls, value: str) -> str:
        return check_recipient(value)

    @field_validator("replyTo", mode="before")
    @classmethod
    def _reply_to(cls, value: Any) -> Any:
        return check_reply_to(value)

    @model_validator(mode="after")
    def _has_content(self) -> SendMessageDto:
        if self.text is None and self.media is None:
            raise PydanticCustomError("content", "Give text, media or both.", {"field": "text"})
        if self.text is not None and self.media is not None and self.media.caption:
            raise PydanticCustomError(
                "caption", "Give the caption once: as text or as media.caption.", {"field": "text"}
            )
        if self.sendAt is not None:
            # a scheduled message keeps neither: refused rather than dropped without a word
            if self.metadata:
                raise PydanticCustomError(
                    "scheduled", "A message sent later (sendAt) carries no metadata.", {"field": "metadata"}
                )
            if self.ignoreOptOut:
                raise PydanticCustomError(
                    "scheduled",
                    "A message sent later (sendAt) cannot override the opt-out list; send it now instead.",
                    {"field": "ignoreOptOut"},
                )
        return self


class MediaUploadForm(Request):
    """The form fields beside the uploaded `file` of POST .../send/media."""

    to: str = recipient_field()
    caption: str | None = Field(None, max_length=CAPTION_MAX)
    type: MediaKind | None = Field(
        None,
        description="Defaults from the file's mimetype: its part's Content-Type when that names one type, else its "
        "name's extension, else application/octet-stream (a document). Given, it must fit the file: an image, "
        "video or audio file's mimetype must be one that kind takes, and an image's bytes must be that image type.",
    )
    replyTo: str | None = Field(
        None,
        max_length=255,
        pattern=NOT_BLANK,
        description="The message this one answers: its id in the portal (or its WhatsApp id), of the same chat.",
    )
    sendAt: SendTime = Field(
        None,
        description=SEND_AT_DOC + " The file is kept in the portal's file store until the message is sent.",
        json_schema_extra=string_rule(pattern=DATE_TIME_PATTERN),
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
    since: QueryDateTime | None = Field(
        None,
        description="Created at or after (RFC 3339 with an offset, years 1900-9998).",
        json_schema_extra=string_rule(pattern=DATE_TIME_PATTERN),
    )
    until: QueryDateTime | None = Field(
        None,
        description="Created before (RFC 3339 with an offset, years 1900-9998).",
        json_schema_extra=string_rule(pattern=DATE_TIME_PATTERN),
    )
    cursor: str | None = Field(
        None, max_length=200, pattern=CURSOR_PATTERN, description="nextCursor of the previous page, as given (opaque)."
    )
    limit: QueryInt = Field(50, ge=1, le=MAX_PAGE, description="Page size.")

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
