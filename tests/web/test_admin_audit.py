"""The audit log page: filters by action, actor, target and dates; keyset pagination; only the tenant's events."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from portal.extensions import db
from portal.services import audit
from portal.services.audit import Actor
from tests.builders import make_tenant, member
from tests.helpers import text

PAGE = "/admin/audit/"


def _results(response) -> str:
    body = text(response)
    return body[body.index('id="audit-results"') :]


def _event(tenant, action="session.create", label="ann@example.com", target="s-1", when=None):
    event = audit.record(
        tenant.id,
        action,
        Actor(type="user", id="1", label=label),
        target_type="session",
        target_id=target,
        details={"name": "Sales"},
    )
    if when is not None:
        event.created_at = when
    db.session.commit()
    return event


@pytest.mark.parametrize("role,status", [("viewer", 403), ("operator", 403), ("admin", 200), ("owner", 200)])
def test_audit_page_is_for_admins_and_owners(login, tenant, role, status):
    assert login(member(tenant, role)).get(PAGE).status_code == status


def test_audit_lists_the_tenants_events_only(login, tenant, owner):
    _event(tenant, action="token.create")
    _event(make_tenant("other"), action="secret.thing")
    body = _results(login(owner).get(PAGE))
    assert "token.create" in body and "ann@example.com" in body
    assert "secret.thing" not in body


@pytest.mark.parametrize(
    "query,shown,hidden",
    [
        ("action=token", "token.create", "member.invite"),
        ("actor=bob", "member.invite", "token.create"),
        ("target=t-9", "token.create", "member.invite"),
    ],
)
def test_audit_filters_narrow_the_list(login, tenant, owner, query, shown, hidden):
    _event(tenant, action="token.create", label="ann@example.com", target="t-9")
    _event(tenant, action="member.invite", label="bob@example.com", target="u-2")
    body = _results(login(owner).get(f"{PAGE}?{query}"))
    assert shown in body and hidden not in body


def test_audit_date_filter_includes_the_whole_end_day(login, tenant, owner):
    _event(tenant, action="old.one", when=datetime(2026, 1, 1, 12, tzinfo=UTC))
    _event(tenant, action="late.on.the.day", when=datetime(2026, 1, 2, 23, 30, tzinfo=UTC))
    _event(tenant, action="next.day", when=datetime(2026, 1, 3, 0, 30, tzinfo=UTC))
    body = _results(login(owner).get(f"{PAGE}?since=2026-01-02&until=2026-01-02"))
    assert "late.on.the.day" in body
    assert "old.one" not in body and "next.day" not in body


def test_audit_with_a_bad_date_says_so(login, owner):
    response = login(owner).get(f"{PAGE}?since=yesterday")
    assert response.status_code == 400
    assert "Not a valid date" in text(response)


def test_audit_pages_with_a_keyset_cursor(login, tenant, owner):
    events = [_event(tenant, action=f"step.{n:03d}") for n in range(55)]
    client = login(owner)
    first = _results(client.get(PAGE))
    assert "step.054" in first and "step.005" in first and "step.004" not in first
    older = f"before={events[5].id}"
    assert older in first
    second = _results(client.get(f"{PAGE}?{older}"))
    assert "step.004" in second and "step.000" in second and "step.005" not in second
    assert "Older events" not in second


def test_audit_cursor_keeps_the_filters(login, tenant, owner):
    for n in range(52):
        _event(tenant, action=f"token.step{n}")
    body = text(login(owner).get(f"{PAGE}?action=token"))
    assert "action=token" in body[body.index("Older events") - 300 :]


def test_audit_htmx_request_gets_only_the_rows(login, tenant, owner):
    _event(tenant, action="token.create")
    response = login(owner).get(PAGE, headers={"HX-Request": "true", "HX-Target": "audit-results"})
    body = text(response)
    assert 'id="audit-results"' in body and "token.create" in body
    assert "<html" not in body


def test_audit_says_when_nothing_matches(login, tenant, owner):
    body = text(login(owner).get(f"{PAGE}?action=nothing.like.this"))
    assert "No events match these filters" in body


def test_audit_pages_follow_the_time_of_the_events_without_repeats(login, tenant, owner):
    # ids and times disagree (an event written late with an earlier time): pages follow the time, each event once
    base = datetime(2026, 3, 1, tzinfo=UTC)
    actions = [f"step.{n:03d}" for n in range(60)]
    for n, action in enumerate(actions):
        _event(tenant, action=action, when=base.replace(minute=n))
    _event(tenant, action="step.late", when=base.replace(minute=5, second=30))
    client = login(owner)
    pages, path = [], PAGE
    while path:
        body = _results(client.get(path))
        pages.append([a for a in [*actions, "step.late"] if a in body])
        older = re.search(r"before=(\d+)", body)
        path = f"{PAGE}?before={older.group(1)}" if older else None
    assert sorted(sum(pages, [])) == sorted([*actions, "step.late"])
    assert len(pages) == 2 and "step.late" in pages[1] and "step.005" in pages[1] and "step.006" in pages[1]


def test_audit_cursor_of_another_tenant_shows_no_foreign_events(login, tenant, owner):
    _event(tenant, action="own.thing")
    foreign = _event(make_tenant(), action="foreign.thing")  # a cursor naming it pages by id alone
    body = _results(login(owner).get(f"{PAGE}?before={foreign.id + 1}"))
    assert "own.thing" in body and "foreign.thing" not in body
