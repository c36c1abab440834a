"""A campaign's audience: a CSV (a `phone` column and any variable columns) read and validated row by row, or
the tenant's contacts with a tag. Every row that is not accepted is reported with its line and why."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, cast, exists, func, select
from sqlalchemy.dialects.postgresql import JSONB

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import Contact, OptOut
from portal.services.contacts import display_name
from portal.services.csvtext import csv_rows
from portal.services.errors import Invalid
from portal.services.recipients import parse_phone

CSV_MAX_BYTES = 20 * 1024 * 1024
ROWS_MAX = 200_000
COLUMNS_MAX = 30
VALUE_MAX = 500
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
TAG_VARIABLES = ["phone", "name"]

# Why a row was not accepted (the error report's "reason" column)
MISSING_PHONE = "missing_phone"
INVALID_PHONE = "invalid_phone"
DUPLICATE = "duplicate"
OPTED_OUT = "opted_out"
MISSING_VARIABLE = "missing_variable"
TOO_LONG = "value_too_long"
BAD_ROW = "wrong_column_count"


def _decode(content: bytes) -> str:
    if len(content) > CSV_MAX_BYTES:
        raise Invalid.field(
            "csv", N_f("The file may be at most %(CSV_MAX_BYTES)s MB.", CSV_MAX_BYTES=CSV_MAX_BYTES // (1024 * 1024))
        )
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid.field("csv", N_("The file is not UTF-8 text (save it as “CSV UTF-8”).")) from None


def read_header(content: bytes) -> list[str]:
    """The CSV's columns, checked: a `phone` column, names usable as {{variables}}, no repeats."""
    text = _decode(content)
    first = next(csv_rows(text[: 64 * 1024], "csv"), None)
    if not first or not any(cell.strip() for cell in first):
        raise Invalid.field("csv", N_("The file is empty; its first line must name the columns (phone, ...)."))
    columns = [cell.strip() for cell in first]
    if "phone" not in [c.casefold() for c in columns]:
        raise Invalid.field("csv", N_("The first line must name a “phone” column."))
    if len(columns) > COLUMNS_MAX:
        raise Invalid.field("csv", N_f("At most %(COLUMNS_MAX)s columns.", COLUMNS_MAX=COLUMNS_MAX))
    seen: set[str] = set()
    for column in columns:
        if not _COLUMN.match(column):
            raise Invalid.field(
                "csv", N_f("Column “%(column)s” is not a usable name (letters, digits and _).", column=column[:40])
            )
        if column.casefold() in seen:
            raise Invalid.field("csv", N_f("Column “%(column)s” appears twice.", column=column))
        seen.add(column.casefold())
    return ["phone" if c.casefold() == "phone" else c for c in columns]


@dataclass
class Row:
    line: int
    chat_id: str
    values: dict[str, str]


@dataclass
class Validated:
    rows: list[Row] = field(default_factory=list)
    rejects: list[tuple[int, str | None, str, str | None]] = field(default_factory=list)  # line, phone, reason, detail
    total: int = 0


def _digits(raw: str) -> str | None:
    # the spellings services.recipients reads ("+49 170 1234567", "0049...", "49..."), as E.164 digits
    parsed = parse_phone(raw)
    if parsed is None:
        return None
    # the E.164 digits (what format_number(E164) gives, without its cost): country code, any leading zeros
    # the national number keeps (Italy), the national number
    zeros = "0" * (parsed.number_of_leading_zeros or 1) if parsed.italian_leading_zero else ""
    return f"{parsed.country_code}{zeros}{parsed.national_number}"


def validate_csv(
    content: bytes,
    used: list[str],
    opted_out: Callable[[set[str]], set[str]],
    progress: Callable[[int], None] | None = None,
) -> Validated:
    """Every data row of the CSV, accepted (a valid number, each used variable filled, the number not seen on
    an earlier line and not opted out) or rejected with its line number and reason."""
    columns = read_header(content)
    phone_at = columns.index("phone")
    reader = csv_rows(_decode(content), "csv")
    next(reader)
    out = Validated()
    seen: dict[str, int] = {}
    width = len(columns)
    for number, cells in enumerate(reader, start=2):
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # blank line
        out.total += 1
        if out.total > ROWS_MAX:
            raise Invalid.field("csv", N_f("At most %(count)s rows per campaign.", count=ROWS_MAX))
        if progress is not None and out.total % 10_000 == 0:
            progress(out.total)
        raw = cells[phone_at].strip() if len(cells) > phone_at else ""
        if len(cells) != width:
            out.rejects.append((number, raw[:64] or None, BAD_ROW, f"{len(cells)} values for {width} columns"))
            continue
        if not raw:
            out.rejects.append((number, None, MISSING_PHONE, None))
            continue
        digits = _digits(raw) if len(raw) <= 40 else None
        if digits is None:
            out.rejects.append((number, raw[:64], INVALID_PHONE, None))
            continue
        chat_id = digits + "@c.us"
        if chat_id in seen:
            out.rejects.append((number, raw[:64], DUPLICATE, f"same number as line {seen[chat_id]}"))
            continue
        values = {c: cells[i].strip() for i, c in enumerate(columns) if c != "phone"}
        values["phone"] = "+" + digits
        missing = next((name for name in used if not values.get(name)), None)
        if missing is not None:
            out.rejects.append((number, raw[:64], MISSING_VARIABLE, f"no value for {{{{{missing}}}}}"))
            continue
        long = next((name for name, value in values.items() if len(value) > VALUE_MAX), None)
        if long is not None:
            out.rejects.append((number, raw[:64], TOO_LONG, f"{long} is over {VALUE_MAX} characters"))
            continue
        seen[chat_id] = number
        out.rows.append(Row(number, chat_id, values))
    return _drop_opted_out(out, opted_out)


def _drop_opted_out(out: Validated, opted_out: Callable[[set[str]], set[str]]) -> Validated:
    listed = opted_out({row.chat_id for row in out.rows})
    if listed:
        kept = []
        for row in out.rows:
            if row.chat_id in listed:
                out.rejects.append((row.line, row.values["phone"], OPTED_OUT, None))
            else:
                kept.append(row)
        out.rows = kept
        out.rejects.sort()
    return out


TAG_BATCH = 2000  # tagged contacts read (and their recipients written) at a time


def _has_tag(dialect: str, tag: str) -> Any:
    """The SQL condition "the contact has `tag`" (tags compare without case, as the portal shows them).

    PostgreSQL: JSON containment on the lower-cased tags (`lower(tags::text)::jsonb @> '["vip"]'`; lower-casing
    the JSON text keeps it valid JSON). SQLite: the tags' elements through json_each, compared lower-cased
    (SQLite lowers ASCII letters only: a tag with other letters is narrowed to contacts with tags, and the
    caller's exact comparison decides). SQL's lower() is not Python's casefold(): a tag spelt with ß does not
    match one spelt with ss."""
    wanted = tag.casefold()
    if dialect == "postgresql":
        lowered = cast(func.lower(cast(Contact.tags, Text)), JSONB)
        return lowered.op("@>")(func.jsonb_build_array(wanted))
    if not wanted.isascii():
        return func.json_array_length(Contact.tags) > 0
    elements = func.json_each(Contact.tags).table_valued("value").alias("tag")
    return exists(select(1).select_from(elements).where(func.lower(elements.c.value) == wanted))


def tagged_batches(tenant_id: int, tag: str, batch: int = TAG_BATCH) -> Iterator[Validated]:
    """The tenant's contacts with `tag`, as audience rows ({{name}} and {{phone}}), a batch at a time: one query
    per batch (keyset on the contact's id) that filters by the tag in SQL and tells whether the number is on the
    opt-out list, so a tag of 100,000 contacts never sits in memory at once. Each batch carries its rows, its
    rejects (not a phone number, opted out) and how many contacts it read (`total`); lines count the tagged
    contacts from 1 in id order."""
    dialect = db.session.get_bind().dialect.name
    wanted = tag.casefold()
    listed = (
        select(OptOut.id)
        .where(OptOut.tenant_id == tenant_id, OptOut.chat_id == Contact.chat_id)
        .exists()
        .label("opted_out")
    )
    stmt = (
        select(Contact.id, Contact.chat_id, Contact.saved_name, Contact.push_name, Contact.tags, listed)
        .where(Contact.tenant_id == tenant_id, _has_tag(dialect, tag))
        .order_by(Contact.id)
        .limit(batch)
    )
    after, position = 0, 0
    while True:
        found = db.session.execute(stmt.where(Contact.id > after)).all()
        if not found:
            return
        after = found[-1].id
        out = Validated()
        for contact in found:
            if not any(isinstance(t, str) and t.casefold() == wanted for t in contact.tags or []):
                continue  # SQLite's narrowed match of a tag with other than ASCII letters
            position += 1
            out.total += 1
            if not contact.chat_id.endswith("@c.us"):
                out.rejects.append((position, contact.chat_id[:64], INVALID_PHONE, "not a phone number"))
                continue
            phone = "+" + contact.chat_id.removesuffix("@c.us")
            if contact.opted_out:
                out.rejects.append((position, phone, OPTED_OUT, None))
                continue
            name = display_name(contact.saved_name, contact.push_name, contact.chat_id)
            out.rows.append(Row(position, contact.chat_id, {"phone": phone, "name": name}))
        yield out
        if len(found) < batch:
            return
