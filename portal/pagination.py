"""Keyset-pagination cursors: the one encoding that services hand out and the API and web pass back.

A cursor is opaque to clients: URL-safe base64 without padding (the alphabet `CURSOR_PATTERN` states for the
OpenAPI document) of either "<created_at ISO 8601>|<id>" (lists ordered by time then id, e.g. messages) or
"<prefix><id>" (lists ordered by id alone, e.g. webhook deliveries). A cursor that does not decode raises
Invalid on the field "cursor"; `is_cursor_error` tells a caller that wants to start again from the first page.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from portal.services.errors import Invalid

FIELD = "cursor"
# The characters a cursor is made of (URL-safe base64, no padding).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
INVALID_MESSAGE = "The cursor is not valid; start again from the first page."


def _encode(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def _invalid() -> Invalid:
    return Invalid.field(FIELD, INVALID_MESSAGE)


def encode_time_id(created_at: datetime, row_id: int) -> str:
    """Opaque cursor pointing just after the row (created_at, id) in (created_at, id) descending order."""
    return _encode(f"{created_at.astimezone(UTC).isoformat()}|{row_id}")


def decode_time_id(cursor: str) -> tuple[datetime, int]:
    """(created_at, id) from a cursor; Invalid(field "cursor") when it was not made by encode_time_id."""
    try:
        raw = _decode(cursor)
        stamp, _, ident = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive")
        return created_at, _row_id(ident)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise _invalid() from None


_MAX_ROW_ID = 2**63 - 1  # the largest BIGINT: a larger "id" was never issued, and would fail in the database


def _row_id(text: str) -> int:
    """A row id as encode_id writes it (ASCII digits, no sign, spaces or underscores, within BIGINT); ValueError
    otherwise."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > _MAX_ROW_ID:
        raise ValueError(text)
    return int(text)


def encode_id(row_id: int, prefix: str) -> str:
    """Opaque cursor pointing just after the row `row_id` in id descending order."""
    return _encode(f"{prefix}{row_id}")


def decode_id(cursor: str, prefix: str) -> int:
    """The id from a cursor made by encode_id with the same prefix; Invalid(field "cursor") otherwise."""
    try:
        raw = _decode(cursor)
        if not raw.startswith(prefix):
            raise ValueError
        return _row_id(raw[len(prefix) :])
    except (ValueError, UnicodeDecodeError):
        raise _invalid() from None


def id_page(
    session: Any, stmt: Any, id_column: Any, cursor: str | None, prefix: str, limit: int
) -> tuple[list, str | None]:
    """One page of `stmt`'s rows in id descending order after `cursor` (made by encode_id with `prefix`), and the
    cursor of the next page (None on the last)."""
    if cursor:
        stmt = stmt.where(id_column < decode_id(cursor, prefix))
    rows = list(session.scalars(stmt.order_by(id_column.desc()).limit(limit + 1)))
    items = rows[:limit]
    return items, (encode_id(items[-1].id, prefix) if len(rows) > limit else None)


def is_cursor_error(error: Invalid) -> bool:
    """Whether `error` is about the cursor (an edited or mangled page link), so the caller may show page one."""
    return FIELD in [f.get("field") for f in error.details.get("fields", [])]
