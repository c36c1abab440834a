"""How an export streams: keyset batches of a Core select, each in a short read of its own, written as CSV one
batch at a time into a small buffer.

Memory stays flat whatever the row count: a batch of BATCH_ROWS plain rows and its CSV text are all a request
holds. Each batch is one keyset step down the list's own index (newest first, as the pages show it), read in its
own transaction, so a slow download holds no snapshot, cursor or connection between batches, and the same code
runs on PostgreSQL (where `messages` is partitioned by month: each step is a merge of the months' index scans)
and on SQLite.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, bindparam, func, select, tuple_

from portal.extensions import db

BATCH_ROWS = 5000
# A cell starting with one of these is read as a formula by spreadsheet programs (CSV injection): such a cell gets
# a leading apostrophe, which they show as text. Tab and carriage return start formulas in some of them too.
FORMULA_START = frozenset("=+-@\t\r")


def guard(value: str | None) -> str | None:
    """`value` safe to open in a spreadsheet: a leading apostrophe when it would start a formula."""
    if value and value[0] in FORMULA_START:
        return "'" + value
    return value


def iso(value: datetime | str | None) -> str:
    """A time as ISO 8601 in UTC with milliseconds ("2026-12-05T01:04:16.123Z"); empty for None. Takes the
    driver's value: an aware datetime (PostgreSQL) or SQLite's stored text ("2026-12-05 01:04:16.123456", UTC)."""
    if value is None:
        return ""
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " ":
            return f"{value[:10]}T{value[11:23]}Z"
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.isoformat(timespec="milliseconds") + "Z"
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


def from_json(value: Any) -> Any:
    """A JSON column's value as the driver gave it: decoded already (PostgreSQL) or its text (SQLite)."""
    return json.loads(value) if isinstance(value, str) else value


def _time(value: datetime | str) -> datetime:
    """A keyset time as the statement binds it (SQLite's driver gives the stored text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Export:
    """One export as it starts: its name, the rows that matched when it started, and its CSV text in chunks (a
    generator: the first chunk is the header row, then one chunk per batch)."""

    kind: str
    filename: str
    rows: int
    chunks: Iterator[str]


@dataclass(frozen=True)
class Keyset:
    """A list read in keyset batches: `first` and `after` are its statements (newest first, at most `row_limit`
    rows; `after` continues below `cursor_at`/`cursor_id`), `params` their values; `time_at` and `id_at` are the
    positions of the order's columns in a row (`time_at` None: ordered by id alone)."""

    first: Any
    after: Any
    params: dict[str, Any]
    id_at: int
    time_at: int | None = None

    def count(self) -> int:
        """How many rows the list has now (one count over the same conditions)."""
        inner = self.first.limit(None).order_by(None).subquery()
        return int(db.session.scalar(select(func.count()).select_from(inner), self.params) or 0)


def by_time(base: Any, created_at: Any, row_id: Any, params: dict[str, Any], id_at: int, time_at: int) -> Keyset:
    """The keyset of `base` in (created_at, id) descending order, the order of the tables' (tenant, created_at, id)
    indexes."""
    order = (created_at.desc(), row_id.desc())
    limit = bindparam("row_limit", type_=Integer)
    key = tuple_(bindparam("cursor_at", type_=created_at.type), bindparam("cursor_id", type_=row_id.type))
    return Keyset(
        first=base.order_by(*order).limit(limit),
        after=base.where(tuple_(created_at, row_id) < key).order_by(*order).limit(limit),
        params=params,
        id_at=id_at,
        time_at=time_at,
    )


def by_id(base: Any, row_id: Any, params: dict[str, Any], id_at: int) -> Keyset:
    """The keyset of `base` in id descending order."""
    limit = bindparam("row_limit", type_=Integer)
    return Keyset(
        first=base.order_by(row_id.desc()).limit(limit),
        after=base.where(row_id < bindparam("cursor_id", type_=row_id.type)).order_by(row_id.desc()).limit(limit),
        params=params,
        id_at=id_at,
    )


def batches(keyset: Keyset, size: int | None = None) -> Iterator[Sequence[Any]]:
    """The list's rows, `size` (BATCH_ROWS) at a time; each batch is read in a transaction of its own, ended at
    once."""
    size = size or BATCH_ROWS
    stmt, values = keyset.first, {**keyset.params, "row_limit": size}
    while True:
        try:
            rows = _fetch(db.session.connection(), stmt, values)
        finally:
            db.session.rollback()  # no snapshot, lock or connection is held while the batch goes out
        if rows:
            yield rows
        if len(rows) < size:
            return
        last = rows[-1]
        values["cursor_id"] = last[keyset.id_at]
        if keyset.time_at is not None:
            values["cursor_at"] = _time(last[keyset.time_at])
        stmt = keyset.after


def _fetch(conn: Any, stmt: Any, values: dict[str, Any]) -> Sequence[Any]:
    """One batch's rows as the driver's own tuples, without SQLAlchemy's rows and result processing (which cost
    half an export's time on PostgreSQL and two thirds on SQLite, bench/csv_export.py): times, JSON and booleans
    come as the driver gives them, which `iso` and `from_json` take on both databases."""
    result = conn.execute(stmt, values)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def csv_chunks(
    header: Sequence[str], rows: Iterable[Sequence[Any]], convert: Callable[[Any], Sequence[Any]]
) -> Iterator[str]:
    """The CSV text: the header row first (so an empty export is a file with its headers), then one chunk per
    batch of `rows`, each row made by `convert`."""
    out = io.StringIO()
    writer = csv.writer(out)

    def flush() -> str:
        text = out.getvalue()
        out.seek(0)
        out.truncate()
        return text

    writer.writerow(header)
    yield flush()
    for batch in rows:
        writer.writerows([convert(row) for row in batch])
        yield flush()
