"""Row ids in URLs and query strings: one parser and one URL converter used everywhere.

`str.isdigit()` is true for "²" and "١٢", and `int()` takes the latter; ids beyond a column's range fail in the
database instead of matching nothing. An id here is ASCII digits only and within the column's range, anything
else is simply "not found".
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import BaseConverter, Map, ValidationError

MAX_INT = 2**31 - 1  # INTEGER primary keys
MAX_BIGINT = 2**63 - 1  # BIGINT primary keys (messages, webhook events and deliveries, audit events)


def parse_id(raw: Any, *, big: bool = False) -> int | None:
    """The row id `raw` names (1 .. the column's maximum), or None when it cannot be one."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 19:
        value = int(raw)
    else:
        return None
    return value if 1 <= value <= (MAX_BIGINT if big else MAX_INT) else None


class IdConverter(BaseConverter):
    """`<int:name>` (an INTEGER key) or `<int(big=True):name>` (a BIGINT key); anything else is a 404."""

    regex = r"[0-9]{1,19}"
    weight = 50
    part_isolating = True

    def __init__(self, map: Map, big: bool = False) -> None:
        super().__init__(map)
        self.big = big

    def to_python(self, value: str) -> int:
        parsed = parse_id(value, big=self.big)
        if parsed is None:
            raise ValidationError()
        return parsed

    def to_url(self, value: Any) -> str:
        return str(int(value))


def init_app(app: Any) -> None:
    """Route every `<int:...>` and `<id:...>` through IdConverter. Call before blueprints are registered."""
    app.url_map.converters["int"] = IdConverter
    app.url_map.converters["id"] = IdConverter
