"""Builders for test data, going through the same services the product uses."""

from __future__ import annotations

import itertools
from typing import Any

from portal.models import Tenant, User
from portal.services import tenants as tenants_service
from portal.services import tokens as tokens_service
from portal.services.audit import Actor

TEST_ACTOR = Actor(type="system", label="tests")
PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


def make_tenant(slug: str | None = None, **kwargs: Any) -> Tenant:
    n = next(_seq)
    return tenants_service.create_tenant(slug or f"tenant-{n}", kwargs.pop("name", f"Tenant {n}"), TEST_ACTOR,
                                         **kwargs)


def make_user(tenant: Tenant | None = None, role: str = "owner", email: str | None = None,
              **kwargs: Any) -> User:
    user = tenants_service.create_user(email or f"user{next(_seq)}@example.com", PASSWORD, TEST_ACTOR, **kwargs)
    if tenant is not None:
        tenants_service.set_membership(tenant, user, role, TEST_ACTOR)
    return user


def make_token(tenant: Tenant, scopes: list[str] | None = None, **kwargs: Any) -> str:
    """A bearer secret for `tenant`."""
    return tokens_service.create_token(tenant, kwargs.pop("name", "test token"), scopes, TEST_ACTOR,
                                       **kwargs).secret


def mailed_link(to: str, marker: str = "/invite/") -> str:
    """The last link containing `marker` mailed to `to` (tests read mail from portal.mail.outbox)."""
    import re

    from portal.mail import outbox

    for mail in reversed(outbox):
        if mail.to == to:
            found = re.search(r"(\S*" + re.escape(marker) + r"\S+)", mail.body)
            if found:
                return found.group(1)
    raise AssertionError(f"no mail to {to} with a {marker} link")
