"""Helpers for the administration and account page tests: members by role, and forms posted as a browser would."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import csrf_token
from tests.factories import make_user


def member(tenant: Any, role: str, email: str | None = None) -> Any:
    """A user with `role` in `tenant`."""
    return make_user(tenant, role, email=email or f"{role}@{tenant.slug}.example.com")


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None, *, page: str = "/",
         **kwargs: Any) -> Any:
    """POST a form with the CSRF token read from `page`, as the browser would send it."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, page)}, **kwargs)


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def find(pattern: str, body: str) -> str:
    """The first group of `pattern` in `body` (fails the test when absent)."""
    match = re.search(pattern, body)
    assert match, f"{pattern!r} not found"
    return match.group(1)
