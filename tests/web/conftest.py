"""Fixtures of the page tests: a signed-in owner and a signed-in viewer of the tenant `acme`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import make_user


@pytest.fixture
def owner_client(login: Any, owner: Any) -> Any:
    return login(owner)


@pytest.fixture
def viewer_client(login: Any, tenant: Any) -> Any:
    return login(make_user(tenant, "viewer", email="viewer@acme.example.com"))
