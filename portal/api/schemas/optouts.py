"""Opt-out list DTOs of the /waha API: the list query, adding a number, the entry and the import's answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from portal.api.schemas.common import (
    CURSOR_PATTERN,
    MAX_PAGE,
    RECIPIENT_DOC,
    RECIPIENT_RULE,
    Page,
    QueryInt,
    Request,
    Response,
    check_recipient,
)

OptOutSource = Literal["keyword", "manual", "import"]


class OptOutListQuery(Request):
    phone: str | None = Field(
        None,
        max_length=160,
        description="Only this number (international form, or a chat id): an empty page when it is not listed.",
        json_schema_extra=RECIPIENT_RULE,
    )
    q: str | None = Field(None, max_length=40, description="Only numbers containing these digits.")
    cursor: str | None = Field(
        None, max_length=200, pattern=CURSOR_PATTERN, description="nextCursor of the previous page, as given (opaque)."
    )
    limit: QueryInt = Field(50, ge=1, le=MAX_PAGE, description="Page size.")

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else check_recipient(value)


class AddOptOutDto(Request):
    phone: str = Field(
        min_length=3,
        max_length=160,
        description=RECIPIENT_DOC,
        examples=["+491701234567"],
        json_schema_extra=RECIPIENT_RULE,
    )
    note: str | None = Field(None, max_length=200, description="Why it is listed (shown on the portal's list).")

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return check_recipient(value)


IMPORT_MAX_CHARS = 5 * 1024 * 1024


class ImportOptOutsDto(Request):
    csv: str = Field(
        min_length=1,
        max_length=IMPORT_MAX_CHARS,
        description="The CSV's text: a `phone` column, or the numbers in the first column when the first line is no "
        "header (at most 5 MB as UTF-8).",
        examples=["phone\n+491701234567\n+491701234568\n"],
    )


class OptOutResponse(Response):
    id: int
    phone: str | None = Field(description="The number in international form (+491701234567); null for a chat id.")
    chatId: str = Field(description="The WhatsApp chat id on the list, e.g. 491701234567@c.us.")
    source: OptOutSource = Field(description="keyword (the person wrote an opt-out keyword), manual or import.")
    note: str | None
    createdBy: str | None = Field(description="Who listed it (a member, a token, or keyword).")
    createdAt: datetime
    added: bool | None = Field(
        None, description="On POST only: true when the number was added now, false when it was listed already."
    )

    @classmethod
    def of(cls, row: Any, added: bool | None = None) -> OptOutResponse:
        number = row.chat_id.removesuffix("@c.us")
        phone = "+" + number if row.chat_id.endswith("@c.us") and number.isdecimal() else None
        return cls(
            id=row.id,
            phone=phone,
            chatId=row.chat_id,
            source=row.source if row.source in ("keyword", "manual", "import") else "manual",
            note=row.note,
            createdBy=row.created_by,
            createdAt=row.created_at,
            added=added,
        )


class OptOutPage(Page[OptOutResponse]):
    pass


class OptOutImportRowError(Response):
    line: int
    reason: str = Field(description="missing phone or invalid phone.")


class OptOutImportResponse(Response):
    added: int = Field(description="Numbers put on the list.")
    already: int = Field(description="Numbers of the file that were listed already.")
    repeated: int = Field(description="Rows naming a number an earlier row of the file named (counted once).")
    errors: list[OptOutImportRowError] = Field(description="Rows that were not numbers (at most the first 1,000).")
    errorCount: int = Field(description="How many rows were refused in all.")
