"""Tenant settings: pacing and retention for admins, the session limit for platform admins only."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Tenant
from tests.builders import make_user, member
from tests.helpers import find, post, text

PAGE = "/admin/settings/"
VALID = {
    "send_rate_per_minute": "12",
    "retention_messages_days": "30",
    "retention_events_days": "7",
    "read_receipts": "y",
}


def _tenant(tenant_id):
    db.session.expire_all()
    return db.session.get(Tenant, tenant_id)


@pytest.mark.parametrize("role,status", [("viewer", 403), ("operator", 403), ("admin", 200), ("owner", 200)])
def test_settings_page_is_for_admins_and_owners(login, tenant, role, status):
    assert login(member(tenant, role)).get(PAGE).status_code == status


def test_settings_page_shows_current_values(login, tenant, owner):
    body = text(login(owner).get(PAGE))
    assert 'value="30"' in body and 'value="90"' in body and 'value="14"' in body
    assert "up to <strong>10</strong> WhatsApp sessions" in body


def test_save_changes_pacing_and_retention(login, tenant, owner):
    client = login(owner)
    response = post(client, PAGE, VALID, page=PAGE)
    assert response.status_code == 302
    saved = _tenant(tenant.id)
    assert (saved.send_rate_per_minute, saved.retention_messages_days, saved.retention_events_days) == (12, 30, 7)
    assert "Saved: messages per minute, message retention, event retention." in text(client.get(PAGE))


def test_save_is_audited_with_before_and_after(login, tenant, owner):
    post(login(owner), PAGE, VALID, page=PAGE)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "tenant.settings_update"))
    assert event.details["send_rate_per_minute"] == {"from": 30, "to": 12}
    assert event.actor_label == owner.email


@pytest.mark.parametrize(
    "field,value", [("send_rate_per_minute", "0"), ("retention_messages_days", "-1"), ("retention_events_days", "many")]
)
def test_save_refuses_values_out_of_range_in_words(login, tenant, owner, field, value):
    response = post(login(owner), PAGE, {**VALID, field: value}, page=PAGE)
    assert response.status_code == 400
    assert "Enter a whole number from" in text(response) or "Not a valid integer" in text(response)
    assert _tenant(tenant.id).send_rate_per_minute == 30


def test_tenant_admin_cannot_raise_the_session_limit(login, tenant, owner):
    post(login(owner), PAGE, {**VALID, "max_sessions": "500"}, page=PAGE)
    assert _tenant(tenant.id).max_sessions is None  # no override: the plan's limit holds


def test_platform_admin_can_raise_the_session_limit(login, tenant):
    admin = make_user(tenant, "owner", email="root@example.com", is_platform_admin=True)
    client = login(admin)
    assert 'name="max_sessions"' in text(client.get(PAGE))
    post(client, PAGE, {**VALID, "max_sessions": "500"}, page=PAGE)
    assert _tenant(tenant.id).max_sessions == 500


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_save_by_direct_post_is_forbidden_below_admin(login, tenant, role):
    response = post(login(member(tenant, role)), PAGE, VALID, page="/")
    assert response.status_code == 403
    assert _tenant(tenant.id).send_rate_per_minute == 30


def test_save_without_csrf_token_is_rejected(login, tenant, owner):
    response = login(owner).post(PAGE, data=VALID)
    assert response.status_code == 400
    assert _tenant(tenant.id).send_rate_per_minute == 30


def _read_receipts_box(client):
    return find(r'(<input[^>]*name="read_receipts"[^>]*>)', text(client.get(PAGE)))


def test_read_receipts_are_on_by_default_and_can_be_turned_off(login, tenant, owner):
    client = login(owner)
    assert "checked" in _read_receipts_box(client)
    without = {k: v for k, v in VALID.items() if k != "read_receipts"}  # an unticked checkbox is not sent
    post(client, PAGE, without, page=PAGE)
    assert _tenant(tenant.id).read_receipts is False
    assert "checked" not in _read_receipts_box(client)
    post(client, PAGE, VALID, page=PAGE)
    assert _tenant(tenant.id).read_receipts is True
