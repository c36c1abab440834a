"""Refusing malformed input at the door, before a view or the database sees it.

- NUL characters in the path, query string or form fields: PostgreSQL text cannot hold them, so they are a 400
  here instead of a database error later. (The WAHA webhook receiver is exempt: it stores what WAHA sends.)
- A multipart part without a field name: nothing could say which field it is.
- A Referer header that does not parse as a URL (a non-numeric port): CSRF's origin check would trip on it.
- JSON nested deeper than MAX_JSON_DEPTH, or that the parser cannot nest that deep: refused as bad JSON.
- Dates outside MIN_YEAR..MAX_YEAR in any date or time filter: a day added to 9999-12-31 does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest

from portal.services.errors import Invalid

MAX_JSON_DEPTH = 32
MIN_YEAR = 1900
MAX_YEAR = 9998
# Requests whose body or query is stored as received (WAHA's signed events).
RAW_PREFIXES = ("/webhooks/",)


class JsonTooDeep(ValueError):
    """The document nests arrays/objects deeper than allowed."""


def loads(data: str | bytes, *, max_depth: int = MAX_JSON_DEPTH, **kwargs: Any) -> Any:
    """json.loads that refuses documents nested deeper than `max_depth` with a ValueError instead of a
    RecursionError (or a slow walk) further down. The WAHA receiver can call it as well."""
    try:
        value = json.loads(data, **kwargs)
    except RecursionError:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels") from None
    if json_depth(value) > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
    return value


def json_depth(value: Any) -> int:
    """How deep arrays and objects nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def contains_nul(value: Any) -> bool:
    """True when any string (key or value) in a parsed JSON document holds a NUL character."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class PortalJSONProvider(DefaultJSONProvider):
    """Flask's JSON with depth-limited parsing (request.get_json reads through app.json)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s, **kwargs)


class PortalRequest(Request):
    """Flask's request with a clear message when a JSON body does not parse: too deep, not UTF-8, empty, or where
    the parser stopped (Werkzeug's own answer names none of these)."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if isinstance(e, JsonTooDeep):
            raise BadRequest(f"The JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels).")
        if isinstance(e, UnicodeDecodeError):
            raise BadRequest("The body is not UTF-8 text.")
        if e is not None:
            if not self.get_data(cache=True).strip():
                raise BadRequest("The body is empty; send a JSON object.")
            raise BadRequest(f"The body is not valid JSON: {e}.")
        return super().on_json_loading_failed(e)


def check_date(value: date | datetime | None, field: str) -> None:
    """Invalid(field) unless `value` lies in MIN_YEAR..MAX_YEAR (so a day or a time zone more is still a date)."""
    if value is not None and not MIN_YEAR <= value.year <= MAX_YEAR:
        raise Invalid.field(field, f"Give a date between the years {MIN_YEAR} and {MAX_YEAR}.")


class CalendarRange:
    """WTForms validator: the date lies in MIN_YEAR..MAX_YEAR, so "to" (that day plus one) is still a date."""

    def __call__(self, form: Any, field: Any) -> None:
        from wtforms.validators import ValidationError

        if field.data is not None and not MIN_YEAR <= field.data.year <= MAX_YEAR:
            raise ValidationError(f"Give a date between the years {MIN_YEAR} and {MAX_YEAR}.")


def _refusal() -> tuple[str, str] | None:
    """(field, why) this request is refused before routing, or None."""
    if "\x00" in request.path:
        return "path", "The address contains a NUL character."
    if request.path.startswith(RAW_PREFIXES):
        return None
    for key, values in request.args.lists():
        if "\x00" in key or any("\x00" in v for v in values):
            return key.replace("\x00", ""), "Text must not contain NUL characters."
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        if None in request.form or None in request.files:
            # a multipart part whose Content-Disposition names no field
            return "form", "Every form field and file needs a name."
        for key, values in request.form.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return key.replace("\x00", ""), "Text must not contain NUL characters."
    referrer = request.headers.get("Referer")
    if referrer:
        try:
            _ = urlsplit(referrer).port  # reading the port raises ValueError when it is not a number in 0..65535
        except ValueError:
            return "Referer", "The Referer header is not a valid URL."
    return None


def init_app(app: Flask) -> None:
    app.request_class = PortalRequest
    app.json_provider_class = PortalJSONProvider
    app.json = PortalJSONProvider(app)

    @app.before_request
    def refuse_malformed() -> None:
        refused = _refusal()
        if refused is not None:
            field, why = refused
            raise Invalid(f"Invalid request: {field}: {why}", details={"fields": [{"field": field, "message": why}]})
