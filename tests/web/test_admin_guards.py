"""Sweeps over every administration, platform and account route: each form needs its CSRF token, and each
tenant administration page is guarded by a permission."""

from __future__ import annotations

import re

import pytest

from tests.builders import make_user

MY_BLUEPRINTS = (
    "admin",
    "admin_team",
    "admin_tokens",
    "admin_webhooks",
    "admin_quick_replies",
    "admin_audit",
    "admin_settings",
    "platform",
    "account",
)


def _rules(app, method):
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in MY_BLUEPRINTS and method in rule.methods
    ]


def _path(rule) -> str:
    return re.sub(
        r"<(?:\w+(?:\([^)]*\))?:)?([a-z_]+)>", lambda m: "1" if "id" in m.group(1) else "some-token", rule.rule
    )


def test_every_form_route_is_covered(app):
    assert len(_rules(app, "POST")) >= 20


def test_every_form_rejects_a_post_without_csrf_token(app, login, tenant):
    client = login(make_user(tenant, "owner", email="root@example.com", is_platform_admin=True))
    refused = {
        rule.rule: client.post(_path(rule), data={"email": "x@example.com"}).status_code for rule in _rules(app, "POST")
    }
    assert set(refused.values()) == {400}, refused


@pytest.mark.parametrize(
    "blueprint",
    ["admin_team", "admin_tokens", "admin_webhooks", "admin_quick_replies", "admin_audit", "admin_settings"],
)
def test_every_tenant_admin_view_requires_a_permission(app, blueprint):
    views = {
        rule.endpoint: app.view_functions[rule.endpoint]
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(blueprint + ".")
    }
    assert views
    unguarded = [name for name, view in views.items() if not getattr(view, "required_permission", None)]
    assert unguarded == []


def test_no_page_of_the_area_uses_inline_script_or_style(app, login, tenant):
    client = login(make_user(tenant, "owner", email="root@example.com", is_platform_admin=True))
    for rule in _rules(app, "GET"):
        if "<" in rule.rule:
            continue
        body = client.get(rule.rule, follow_redirects=True).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)|\sstyle=|\son[a-z]+=", body), rule.rule
