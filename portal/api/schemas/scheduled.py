"""Scheduled message DTOs of the /waha API: sendAt on a send, the list query, the change and the answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from portal.api.schemas.common import (
    CURSOR_PATTERN,
    DATE_TIME_PATTERN,
    MAX_PAGE,
    MAX_TEXT,
    NOT_BLANK,
    Page,
    QueryDateTime,
    QueryInt,
    Request,
    Response,
    string_rule,
)
from portal.inputs import MAX_YEAR, MIN_YEAR

ScheduledState = Literal["queued", "sending", "sent", "failed", "cancelled", "skipped"]

SEND_AT_DOC = (
    "Send later, at this time (RFC 3339 with an offset; in the future, at most a year away): the answer is then "
    "202 with the scheduled message instead of the sent one."
)


def check_send_at_wire(value: Any) -> Any:
    """sendAt as sent: a string in RFC 3339 with an offset (years 1900-9998)."""
    import re

    if not isinstance(value, str) or not re.fullmatch(DATE_TIME_PATTERN, value):
        raise PydanticCustomError(
            "datetime_parsing", "Give a date and time as in RFC 3339, with an offset, e.g. 2030-05-01T12:00:00Z."
        )
    return value


def in_calendar(value: datetime | None) -> datetime | None:
    """The time, if its year is one the portal takes (MIN_YEAR..MAX_YEAR): a day or a zone more is still a date."""
    if value is not None and not MIN_YEAR <= value.year <= MAX_YEAR:
        raise PydanticCustomError("date_range", f"Give a date between the years {MIN_YEAR} and {MAX_YEAR}.")
    return value


def _wire_time(value: Any) -> Any:
    return None if value is None else check_send_at_wire(value)


# A time to send at (sendAt, a campaign's startAt): RFC 3339 with an offset as sent, a day the calendar has, in the
# years the portal takes; None when left out.
SendTime = Annotated[datetime | None, BeforeValidator(_wire_time), AfterValidator(in_calendar)]


class ScheduledListQuery(Request):
    sessionId: str | None = Field(None, max_length=36, description="Only this session's scheduled messages.")
    state: ScheduledState | None = Field(None, description="queued, sending, sent, failed, cancelled or skipped.")
    chatId: str | None = Field(None, max_length=128, description="Only this chat (e.g. 491701234567@c.us).")
    late: bool | None = Field(None, description="true: only messages held past their time (session not working).")
    since: QueryDateTime | None = Field(
        None,
        description="Due at or after (RFC 3339 with an offset, years 1900-9998).",
        json_schema_extra=string_rule(pattern=DATE_TIME_PATTERN),
    )
    until: QueryDateTime | None = Field(
        None,
        description="Due before (RFC 3339 with an offset, years 1900-9998).",
        json_schema_extra=string_rule(pattern=DATE_TIME_PATTERN),
    )
    cursor: str | None = Field(
        None, max_length=200, pattern=CURSOR_PATTERN, description="nextCursor of the previous page, as given (opaque)."
    )
    limit: QueryInt = Field(50, ge=1, le=MAX_PAGE, description="Page size.")

    @field_validator("since", "until")
    @classmethod
    def _calendar(cls, value: datetime | None) -> datetime | None:
        return in_calendar(value)


class UpdateScheduledDto(Request):
    """What to change of a scheduled message that is still queued (at least one field)."""

    model_config = {"json_schema_extra": {"minProperties": 1}}

    sendAt: SendTime = Field(
        None,
        description="The new time (RFC 3339 with an offset; in the future, at most a year away).",
        json_schema_extra=string_rule(pattern=DATE_TIME_PATTERN),
    )
    text: str | None = Field(None, max_length=MAX_TEXT, pattern=NOT_BLANK, description="The new text (or caption).")


class ScheduledMessageResponse(Response):
    id: int = Field(description="The scheduled message's id.")
    sessionId: str
    chatId: str
    text: str | None = Field(description="The text, or the caption of the file.")
    hasMedia: bool
    sendAt: datetime | None = Field(description="When it is to be sent.")
    state: ScheduledState = Field(description="queued, sending, sent, failed, cancelled or skipped.")
    late: bool = Field(description="Its time came while the session was not WORKING; it goes once it is.")
    holdReason: str | None = Field(description="Why it waits right now, when it does.")
    messageId: int | None = Field(description="The sent message's id in the portal (GET /waha/messages/{id}).")
    error: str | None
    createdAt: datetime
    updatedAt: datetime
    sentAt: datetime | None

    @classmethod
    def of(cls, item: Any) -> ScheduledMessageResponse:
        return cls(
            id=item.id,
            sessionId=item.session_id,
            chatId=item.chat_id,
            text=item.body if item.body is not None else (item.media or {}).get("caption"),  # a file's caption
            hasMedia=item.media is not None,
            sendAt=item.not_before,
            state=item.state,
            late=item.late,
            holdReason=item.hold_reason,
            messageId=item.message_id,
            error=item.last_error,
            createdAt=item.created_at,
            updatedAt=item.updated_at,
            sentAt=item.sent_at,
        )


class ScheduledPage(Page[ScheduledMessageResponse]):
    pass
