"""Bad input never answers 5xx: every route of the URL map, HTML and API, signed in and with a token, is called
with hostile values on each URL parameter and each query parameter, and must answer 4xx (or a normal page)
without logging a traceback."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.builders import make_token, make_user
from tests.helpers import csrf_token

ROOT = Path(__file__).resolve().parent.parent

# Values that once answered 500 somewhere: Unicode digits, ids beyond any column, NUL, dates at the edge of the
# calendar, junk cursors, negative numbers, overlong text.
PATH_VALUES = ("²", "99999999999999999999", "2147483648", "0", "x\x00y", "a" * 300)
QUERY_VALUES = (
    "\x00",
    "9999-12-31",
    "0001-01-01T00:00:00+01:00",
    "99999999999999999999",
    "²",
    "!!not-a-cursor!!",
    "2024-02-30",
    # well-formed cursors of every list whose id is beyond any column (or not written as the portal writes ids)
    *(
        base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        for raw in (
            "2026-12-05T12:04:40.443886+00:00|99999999999999999999",
            "2026-12-05T12:04:40+00:00|-99999999999999999999",
            "2026-12-05T12:04:40+00:00| 13",
            *(f"{prefix}{ident}" for prefix in ("q", "d", "o", "contact:", "note:") for ident in ("9" * 20, "1_3")),
        )
    ),
)
SKIP_ENDPOINTS = {"static", "auth.logout"}


def _query_names() -> list[str]:
    """Every query parameter a view reads: names read from request.args in the code, filter form fields and the
    API's query models."""
    names: set[str] = {
        "cursor",
        "page",
        "limit",
        "next",
        "session",
        "status",
        "since",
        "until",
        "before",
        "fresh",
        "_method",
    }
    for path in (ROOT / "portal").rglob("*.py"):
        names.update(re.findall(r"request\.args(?:\.get)?[(\[]\s*[\"'](\w+)[\"']", path.read_text()))
    from portal.api.openapi import ROUTES
    from portal.web.admin_forms import AuditFilterForm
    from portal.web.forms import MessageFilterForm

    for form in (MessageFilterForm, AuditFilterForm):
        names.update(name for name, value in vars(form).items() if hasattr(value, "field_class"))
    for route in ROUTES:
        if route.query is not None:
            names.update(route.query.model_fields)
    return sorted(names)


def _fill(rule: Any, values: dict[str, str]) -> str:
    """The rule's path with each <converter:name> replaced by the raw value given (percent-encoded)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        return quote(values[name], safe="%")

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", replace, rule.rule)


def _plausible(rule: Any) -> dict[str, str]:
    return {
        name: ("1" if type(conv).__name__ in ("IntegerConverter", "IdConverter") else "x")
        for name, conv in rule._converters.items()
    }


class Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


@pytest.fixture
def signed_in(app: Flask, tenant: Any, login: Any) -> FlaskClient:
    """An owner of acme who is also a platform admin, so every page is reachable."""
    user = make_user(tenant, "owner", email="admin@acme.example.com", is_platform_admin=True)
    return login(user)


def _rules(app: Flask, api: bool) -> list[Any]:
    return [
        r for r in app.url_map.iter_rules() if r.endpoint not in SKIP_ENDPOINTS and r.rule.startswith("/waha") == api
    ]


def _call(
    client: FlaskClient,
    method: str,
    url: str,
    headers: dict[str, str],
    failures: list[str],
    tracebacks: Tracebacks,
    **kwargs: Any,
) -> None:
    response = client.open(url, method=method, headers=headers, **kwargs)
    if response.status_code >= 500 and response.status_code != 503:
        failures.append(f"{method} {url!r} -> {response.status_code}: {response.get_data(as_text=True)[:200]}")
    elif response.status_code == 503 and b"waha_unavailable" not in response.get_data():
        failures.append(f"{method} {url!r} -> 503 without waha_unavailable")
    if tracebacks.records:
        failures.append(f"{method} {url!r} logged: {tracebacks.records[0].getMessage()[:200]}")
        tracebacks.records.clear()


def _walk(
    client: FlaskClient, rules: list[Any], headers: dict[str, str], tracebacks: Tracebacks, html: bool
) -> list[str]:
    failures: list[str] = []
    names = _query_names()
    from portal.api.openapi import route_for

    for rule in rules:
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        for name in rule.arguments:
            for value in PATH_VALUES:
                url = _fill(rule, {**_plausible(rule), name: value})
                for method in methods:
                    _call(client, method, url, headers, failures, tracebacks)
        if "GET" not in methods:
            continue
        base = _fill(rule, _plausible(rule))
        route = route_for(rule.endpoint)
        for value in QUERY_VALUES:
            if html:
                # HTML views ignore parameters they do not read: one request carries them all.
                _call(client, "GET", base + "?" + urlencode(dict.fromkeys(names, value)), headers, failures, tracebacks)
            else:
                # The API refuses unknown parameters, so each declared one is tried alone.
                for name in route.query.model_fields if route and route.query else ("cursor",):
                    _call(client, "GET", base + "?" + urlencode({name: value}), headers, failures, tracebacks)
        _call(client, "GET", base + "?status=a&status=b&cursor=x&cursor=y", headers, failures, tracebacks)
    return failures


@pytest.mark.timeout(600)  # every route of the URL map with every kind of bad value
def test_html_routes_answer_bad_input_with_4xx(app: Flask, signed_in: FlaskClient, tracebacks: Tracebacks) -> None:
    headers = {"X-CSRFToken": csrf_token(signed_in, "/sessions/")}
    failures = _walk(signed_in, _rules(app, api=False), headers, tracebacks, html=True)
    assert not failures, "\n".join(failures[:40])


@pytest.mark.timeout(600)
def test_api_routes_answer_bad_input_with_4xx(
    app: Flask, client: FlaskClient, tenant: Any, tracebacks: Tracebacks
) -> None:
    headers = {"Authorization": f"Bearer {make_token(tenant)}"}
    failures = _walk(client, _rules(app, api=True), headers, tracebacks, html=False)
    assert not failures, "\n".join(failures[:40])
