"""Queries of the CSV exports (GET .../export): the filters of the matching list, without its cursor and limit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from portal.api.schemas.common import DATE_TIME_PATTERN, WIRE_INT, QueryDateTime, Request, string_rule
from portal.inputs import MAX_YEAR, MIN_YEAR
from portal.services.forwarding import DeliveryStatus

MessageStatus = Literal["PENDING", "SERVER", "DEVICE", "READ", "PLAYED", "ERROR"]


class _TimeRange(Request):
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

    @field_validator("since", "until")
    @classmethod
    def _calendar(cls, value: datetime | None) -> datetime | None:
        if value is not None and not MIN_YEAR <= value.year <= MAX_YEAR:
            raise PydanticCustomError("date_range", f"Give a date between the years {MIN_YEAR} and {MAX_YEAR}.")
        return value


class MessageExportQuery(_TimeRange):
    """The filters of GET /waha/messages."""

    sessionId: str | None = Field(None, max_length=36, description="Only this session's messages.")
    direction: Literal["in", "out"] | None = Field(None, description="in (received) or out (sent).")
    status: MessageStatus | None = None
    chatId: str | None = Field(None, max_length=128, description="Only this chat (e.g. 491701234567@c.us).")
    q: str | None = Field(None, max_length=200, description="Text search in the message body.")


class AuditExportQuery(_TimeRange):
    """The filters of the audit log page."""

    action: str | None = Field(None, max_length=64, description="Actions starting with this (e.g. token).")
    actor: str | None = Field(None, max_length=254, description="Part of the actor's email or name.")
    target: str | None = Field(None, max_length=64, description="Only events about this target id.")


class DeliveryExportQuery(_TimeRange):
    """The filters of GET /waha/webhooks/deliveries, and a time range."""

    endpointId: Annotated[int, Field(ge=1, le=2**31 - 1), WIRE_INT] | None = Field(
        None, description="Only attempts to this webhook endpoint."
    )
    status: DeliveryStatus | None = Field(None, description="pending, succeeded, failed or dead.")


class ContactExportQuery(Request):
    """The filter of GET /waha/contacts."""

    q: str | None = Field(None, max_length=100, description="Search in names and numbers.")
