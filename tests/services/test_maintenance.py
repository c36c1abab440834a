"""Sync, attention, watchdog, orphans and retention against the simulator."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.mail import outbox
from portal.models import Message, WahaServer, WahaSession, WebhookDelivery, WebhookEvent, utcnow
from portal.services import forwarding, maintenance
from portal.storage import storage
from tests.builders import TEST_ACTOR, make_user, new_session, working_session
from tests.helpers import ensure_test_partitions, quiet_waha_webhooks, wait_for


@pytest.fixture(autouse=True)
def _quiet(app: Any) -> Any:
    outbox.clear()
    with quiet_waha_webhooks(app):
        yield


def _server() -> WahaServer:
    return db.session.scalar(select(WahaServer))


def _row(session_id: str) -> WahaSession:
    db.session.expire_all()
    return db.session.get(WahaSession, session_id)


def test_sync_updates_every_session_of_a_server_with_one_list_call(tenant, sim, waha_requests):
    rows = [new_session(tenant, f"S{n}") for n in range(4)]
    wait_for(lambda: all(sim.session(r.external_name)["status"] == "SCAN_QR_CODE" for r in rows))
    sim.scan(rows[0].external_name)
    waha_requests.clear()
    report = maintenance.sync_server(_server())
    assert waha_requests.entries == [("GET", "/api/sessions")]  # the whole sync is that one call
    assert report.listed == 4
    assert _row(rows[0].id).status == "WORKING" and _row(rows[0].id).me["id"] == "491701234567@c.us"
    assert {_row(r.id).status for r in rows[1:]} == {"SCAN_QR_CODE"}
    assert all(_row(r.id).last_synced_at is not None for r in rows)


def test_failed_session_tells_owner_and_admins_once_per_episode(tenant, owner, sim, receiver_url):
    admin = make_user(tenant, "admin", email="admin@acme.example.com")
    make_user(tenant, "viewer", email="viewer@acme.example.com")
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver_url, events=["session.attention"])
    session = working_session(tenant, sim, "Shop")
    sim.fail(session.external_name)
    maintenance.sync_server(_server())
    maintenance.sync_server(_server())  # still FAILED: no second notice
    assert sorted(m.to for m in outbox) == sorted([owner.email, admin.email])
    assert "Shop" in outbox[0].subject and "failed" in outbox[0].body
    [delivery] = db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    assert delivery.event_type == "session.attention" and delivery.payload["payload"]["reason"] == "failed"
    assert _row(session.id).attention == "failed"


def test_working_again_ends_the_episode_so_the_next_failure_is_told(tenant, owner, sim):
    session = working_session(tenant, sim, "Shop")
    sim.fail(session.external_name)
    maintenance.sync_server(_server())
    sim.simulator.control_stop(session.external_name)
    sim.simulator.control_start(session.external_name)
    wait_for(lambda: sim.session(session.external_name)["status"] == "WORKING")
    maintenance.sync_server(_server())
    assert _row(session.id).attention is None
    sim.fail(session.external_name)
    maintenance.sync_server(_server())
    assert len(outbox) == 2


def test_logout_on_the_phone_asks_for_a_new_qr(tenant, owner, sim):
    session = working_session(tenant, sim, "Shop")
    sim.logout_from_phone(session.external_name)
    wait_for(lambda: sim.session(session.external_name)["status"] == "SCAN_QR_CODE")
    maintenance.sync_server(_server())
    assert _row(session.id).attention == "needs_qr"
    assert [m.to for m in outbox] == [owner.email]


def test_watchdog_finds_a_quiet_working_session_that_lost_its_login(tenant, owner, sim):
    session = working_session(tenant, sim, "Quiet")
    sim.logout_from_phone(session.external_name)  # its events never reach the portal here
    wait_for(lambda: sim.session(session.external_name)["status"] == "SCAN_QR_CODE")
    row = _row(session.id)
    row.last_event_at = utcnow() - timedelta(hours=2)
    db.session.commit()
    assert maintenance.watchdog(silence=60) == [session.id]
    assert maintenance.watchdog(silence=60) == []  # told once
    assert _row(session.id).attention == "logged_out"
    assert [m.to for m in outbox] == [owner.email]


def test_watchdog_leaves_recently_heard_sessions_alone(tenant, sim, waha_requests):
    session = working_session(tenant, sim, "Chatty")
    row = _row(session.id)
    row.last_event_at = utcnow()
    db.session.commit()
    waha_requests.clear()
    assert maintenance.watchdog(silence=60) == []
    assert waha_requests.count("GET", "/me") == 0


def test_orphan_waha_session_is_deleted_after_the_grace_period(app, tenant, sim):
    kept = new_session(tenant, "Kept")
    import requests

    for name, metadata in (
        ("orphan_1", {"portal.session_id": "11111111-2222-3333-4444-555555555555"}),
        ("not_ours", {"someone": "else"}),
    ):
        requests.post(
            f"{sim.url}/api/sessions",
            headers=sim.headers,
            timeout=5,
            json={"name": name, "start": False, "config": {"metadata": metadata}},
        ).raise_for_status()
    report = maintenance.reconcile()[0]
    assert report.orphans_deleted == []  # first seen now: a create may still be committing
    app.config["ORPHAN_GRACE_SECONDS"] = 0
    try:
        report = maintenance.reconcile()[0]
    finally:
        app.config.pop("ORPHAN_GRACE_SECONDS")
    assert report.orphans_deleted == ["orphan_1"]
    assert sim.session("orphan_1") is None
    assert sim.session("not_ours") is not None and sim.session(kept.external_name) is not None


def test_prune_applies_each_tenants_retention(tenant, media_backend):
    session = new_session(tenant, "Old")
    tenant.retention_messages_days, tenant.retention_events_days = 30, 7
    old, recent = utcnow() - timedelta(days=40), utcnow() - timedelta(days=1)
    storage().save("prune/old.jpeg", b"jpeg", "image/jpeg")
    for n, when in enumerate((old, recent)):
        db.session.add(
            Message(
                tenant_id=tenant.id,
                session_id=session.id,
                direction="in",
                source="inbound",
                waha_message_id=f"false_1@c.us_{n}",
                chat_id="1@c.us",
                created_at=when,
                media={"status": "stored", "key": "prune/old.jpeg"} if when is old else None,
            )
        )
        db.session.add(
            WebhookEvent(
                event_id=f"evt_prune_{n}",
                tenant_id=tenant.id,
                session_id=session.id,
                event="message",
                payload={},
                status="done",
                received_at=when,
            )
        )
        db.session.add(
            WebhookDelivery(
                tenant_id=tenant.id,
                url="http://x/",
                msg_id=f"m{n}",
                event_type="message",
                payload={},
                status="succeeded",
                created_at=when,
            )
        )
    db.session.commit()
    counts = maintenance.prune()
    ensure_test_partitions()  # PostgreSQL dropped the past months (later tests write into them)
    if db.engine.dialect.name == "postgresql":
        assert counts.pop("partitions_dropped") >= 2  # the old message's and the old event's months, whole
    assert counts == {"messages": 1, "media_files": 1, "media_expired": 0, "events": 1, "deliveries": 1}
    assert db.session.scalar(select(func.count()).select_from(Message)) == 1
    assert not storage().exists("prune/old.jpeg")


@pytest.fixture
def receiver_url() -> str:
    """A URL that nothing needs to answer: the attention test only checks the planned delivery."""
    return "http://127.0.0.1:9/attention"
