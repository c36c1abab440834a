"""The dashboard: sessions by status, today's traffic and failures, WAHA health, and the empty state."""

from __future__ import annotations

import re
from datetime import timedelta

from portal.extensions import db
from portal.models import WebhookDelivery, utcnow
from portal.services import dashboard as dashboard_service
from tests.builders import make_tenant, make_user, new_session, stored_message, working_session

HX = {"HX-Request": "true"}


def stat(page: str, name: str) -> int:
    return int(re.search(rf'id="stat-{name}">(\d+)<', page).group(1))


def delivery(tenant, msg_id: str, status: str, attempt: int = 1, **fields) -> WebhookDelivery:
    row = WebhookDelivery(
        tenant_id=tenant.id,
        url="https://hooks.example.com/x",
        msg_id=msg_id,
        event_type="message",
        payload={},
        attempt=attempt,
        status=status,
        **fields,
    )
    db.session.add(row)
    db.session.commit()
    return row


def test_dashboard_for_a_new_tenant_shows_the_first_steps(owner_client):
    page = owner_client.get("/").get_data(as_text=True)
    assert "Get started in three steps" in page
    assert 'href="/sessions/new"' in page
    assert stat(page, "in") == 0 and stat(page, "out") == 0


def test_dashboard_counts_sessions_by_status(owner_client, tenant, sim):
    working_session(tenant, sim, "One")
    working_session(tenant, sim, "Two", phone="491702222222")
    new_session(tenant, "Three")
    page = owner_client.get("/").get_data(as_text=True)
    assert re.search(r'data-status="WORKING">Working</span> <strong>2</strong>', page)
    assert re.search(r'data-status="(STARTING|SCAN_QR_CODE)">[^<]+</span> <strong>1</strong>', page)
    assert "All 3 sessions" in page and "Get started" not in page


def test_dashboard_counts_todays_messages_and_failed_sends(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, direction="in", status="DEVICE")
    stored_message(tenant, session, direction="out", status="READ")
    stored_message(tenant, session, direction="out", status="ERROR")
    stored_message(tenant, session, direction="in", status="DEVICE", created_at=utcnow() - timedelta(days=2))
    page = owner_client.get("/").get_data(as_text=True)
    assert (stat(page, "in"), stat(page, "out"), stat(page, "failed-sends")) == (1, 2, 1)


def test_dashboard_counts_a_failed_delivery_once_and_not_when_a_retry_succeeded(owner_client, tenant):
    delivery(tenant, "msg_a", "failed", 1)
    delivery(tenant, "msg_a", "dead", 2)
    delivery(tenant, "msg_b", "failed", 1)
    delivery(tenant, "msg_b", "succeeded", 2)
    delivery(tenant, "msg_c", "succeeded", 1)
    page = owner_client.get("/").get_data(as_text=True)
    assert stat(page, "failed-deliveries") == 1


def test_summary_ignores_other_tenants(ctx, tenant, sim):
    other = make_tenant("globex", name="Globex")
    stored_message(other, working_session(other, sim, "Globex line"), direction="in", status="DEVICE")
    delivery(other, "msg_x", "dead")
    summary = dashboard_service.summary(tenant)
    assert (summary.sessions_total, summary.messages_in_today, summary.failed_deliveries_today) == (0, 0, 0)


def test_health_fragment_shows_the_simulator_up(owner_client):
    response = owner_client.get("/dashboard/health", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert "default" in body and "badge-ok" in body and "2026.7.1" in body


def test_health_fragment_shows_a_server_that_is_down(owner_client, sim):
    sim.fail_next(10, 503)
    body = owner_client.get("/dashboard/health", headers=HX).get_data(as_text=True)
    assert "badge-down" in body


def test_health_hides_server_addresses_from_tenant_users(owner_client, sim):
    body = owner_client.get("/dashboard/health", headers=HX).get_data(as_text=True)
    assert sim.url not in body


def test_dashboard_loads_health_after_the_page(owner_client):
    page = owner_client.get("/").get_data(as_text=True)
    assert re.search(r'hx-get="/dashboard/health"\s+hx-trigger="load"', page)


def test_viewer_sees_the_dashboard_without_create_links(login, tenant):
    client = login(make_user(tenant, "viewer", email="viewer@acme.example.com"))
    page = client.get("/").get_data(as_text=True)
    assert "Your role can look but not create sessions" in page
    assert 'href="/sessions/new"' not in page
