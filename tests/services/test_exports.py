"""The export's cell rules: times in ISO 8601 UTC from either driver, and the formula guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from portal.services.exports import guard, iso


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 12, 5, 1, 4, 16, 123456, tzinfo=UTC), "2026-12-05T01:04:16.123Z"),
        (datetime(2026, 12, 5, 3, 4, 16, tzinfo=timezone(timedelta(hours=2))), "2026-12-05T01:04:16.000Z"),
        ("2026-12-05 01:04:16.123456", "2026-12-05T01:04:16.123Z"),  # SQLite's stored text (UTC)
        ("2026-12-05 01:04:16", "2026-12-05T01:04:16.000Z"),
        (None, ""),
    ],
)
def test_times_are_iso_8601_in_utc(value, expected):
    assert iso(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+49 170", "'+49 170"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=1", "a=1"),
        ("", ""),
        (None, None),
    ],
)
def test_cells_that_start_a_formula_get_an_apostrophe(value, expected):
    assert guard(value) == expected
