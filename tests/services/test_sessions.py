"""Session lifecycle against wahasim over loopback, real PostgreSQL and Redis."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from portal.extensions import db, redis_store
from portal.models import AuditEvent, WahaServer, WahaSession, utcnow
from portal.services import sessions
from portal.services.errors import Conflict, Invalid, NotFound, Upstream
from portal.waha import errors as waha_errors
from tests.builders import TEST_ACTOR, make_tenant
from tests.helpers import wait_for


def session_rows() -> int:
    return db.session.scalar(select(func.count(WahaSession.id))) or 0


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------------------------------- create


@pytest.mark.smoke
def test_create_session_starts_it_on_waha(tenant, sim):
    session = sessions.create_session(tenant, TEST_ACTOR, name="Sales desk")

    on_waha = sim.session(session.external_name)
    assert on_waha is not None
    assert on_waha["status"] in ("STARTING", "SCAN_QR_CODE")
    assert session.status in ("STARTING", "SCAN_QR_CODE")
    assert session.desired_state == "running"


def test_create_session_gives_waha_a_signed_webhook_back_to_the_portal(app, tenant, sim):
    session = sessions.create_session(tenant, TEST_ACTOR, name="Sales")

    [hook] = sim.session(session.external_name)["config"]["webhooks"]
    assert hook["url"] == f"{app.config['PUBLIC_BASE_URL']}/webhooks/waha?session={session.id}"
    assert hook["hmac"]["key"] == session.hmac_key and len(session.hmac_key) >= 32
    assert hook["retries"]["policy"] == "exponential"
    assert hook["events"] == ["*"]


def test_create_session_sends_tenant_and_session_ids_as_metadata(tenant, sim):
    session = sessions.create_session(tenant, TEST_ACTOR, name="Sales", config={"metadata": {"team": "north"}})

    metadata = sim.session(session.external_name)["config"]["metadata"]
    assert metadata == {"team": "north", "portal.tenant_id": str(tenant.id), "portal.session_id": session.id}


def test_create_session_gives_each_session_its_own_hmac_key(tenant):
    first = sessions.create_session(tenant, TEST_ACTOR, name="One")
    second = sessions.create_session(tenant, TEST_ACTOR, name="Two")

    assert first.hmac_key != second.hmac_key


@pytest.mark.parametrize("name", ["Sales desk", "Ünïcødé ☎ support", "x" * 100, "---", "a/b\\c?d"])
def test_create_session_external_name_is_valid_for_waha(tenant, sim, name):
    session = sessions.create_session(tenant, TEST_ACTOR, name=name)

    assert sessions.EXTERNAL_NAME_RE.match(session.external_name)
    assert sim.session(session.external_name) is not None


def test_create_session_external_names_differ_for_the_same_name_in_two_tenants(tenant):
    other = make_tenant("other")

    mine = sessions.create_session(tenant, TEST_ACTOR, name="Support")
    theirs = sessions.create_session(other, TEST_ACTOR, name="Support")

    assert mine.external_name != theirs.external_name


@pytest.mark.smoke
def test_create_session_rejects_taken_name_with_409(tenant):
    sessions.create_session(tenant, TEST_ACTOR, name="Sales")

    with pytest.raises(Conflict) as caught:
        sessions.create_session(tenant, TEST_ACTOR, name="Sales")

    assert caught.value.status == 409 and caught.value.code == "session_exists"
    assert session_rows() == 1


def test_create_session_rejects_tenant_over_its_limit_with_409(ctx, sim):
    small = make_tenant("small", max_sessions=1)
    sessions.create_session(small, TEST_ACTOR, name="One")

    with pytest.raises(Conflict) as caught:
        sessions.create_session(small, TEST_ACTOR, name="Two")

    assert caught.value.code == "quota_exceeded"
    assert len(sim.simulator.sessions) == 1


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "engine": "VENOM"}, "engine"),
        ({"name": "ok", "webhook_url": "ftp://example.com/hook"}, "webhook_url"),
        (
            {"name": "ok", "webhook_url": "https://example.com/hook", "webhook_events": ["message", "nope"]},
            "webhook_events",
        ),
        ({"name": "ok", "config": {"webhooks": []}}, "config"),
        ({"name": "ok", "config": {"metadata": {"portal.tenant_id": "9"}}}, "config.metadata"),
        ({"name": "ok", "config": {"metadata": {"n": 1}}}, "config.metadata"),
    ],
)
def test_create_session_rejects_invalid_input(tenant, sim, kwargs, field):
    with pytest.raises(Invalid) as caught:
        sessions.create_session(tenant, TEST_ACTOR, **kwargs)

    assert caught.value.details["fields"][0]["field"] == field
    assert session_rows() == 0 and not sim.simulator.sessions


def test_create_session_accepts_all_events_and_stores_the_tenant_webhook(tenant):
    session = sessions.create_session(
        tenant, TEST_ACTOR, name="Hooked", webhook_url="https://example.com/hook", webhook_events=["*"]
    )

    assert (session.webhook_url, session.webhook_events) == ("https://example.com/hook", ["*"])


def test_create_session_when_waha_fails_leaves_no_row(tenant, sim):
    sim.fail_next(1, 503)

    with pytest.raises(Upstream) as caught:
        sessions.create_session(tenant, TEST_ACTOR, name="Sales")

    assert caught.value.status == 503 and caught.value.retry_after
    assert session_rows() == 0
    assert not sim.simulator.sessions


def test_create_session_when_waha_is_unreachable_leaves_no_row(tenant):
    server = db.session.scalar(select(WahaServer))
    server.base_url = closed_port_url()
    db.session.commit()

    with pytest.raises(Upstream):
        sessions.create_session(tenant, TEST_ACTOR, name="Sales")

    assert session_rows() == 0


def test_create_session_without_a_server_with_room_answers_503(tenant, sim):
    server = db.session.scalar(select(WahaServer))
    server.is_enabled = False
    db.session.commit()

    with pytest.raises(Upstream):
        sessions.create_session(tenant, TEST_ACTOR, name="Sales")

    assert session_rows() == 0 and not sim.simulator.sessions


def test_create_session_when_the_commit_fails_deletes_it_on_waha(app, tenant, sim, waha_requests):
    """The database connection dies while WAHA creates the session: the WAHA session must not stay behind."""
    pid = db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    sim.set_latency(300)

    def kill_connection() -> None:
        # Once WAHA has the create request (the simulator holds it for 300 ms), the row is flushed and
        # waiting for the commit.
        wait_for(lambda: waha_requests.count("POST", "/api/sessions"), timeout=10, interval=0.005)
        with app.app_context(), db.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    killer = threading.Thread(target=kill_connection)
    killer.start()
    try:
        with pytest.raises(SQLAlchemyError):
            sessions.create_session(tenant, TEST_ACTOR, name="Doomed")
    finally:
        killer.join()

    assert waha_requests.count("POST", "/api/sessions") == 1
    assert waha_requests.count("DELETE", "/api/sessions/") == 1
    assert not sim.simulator.sessions
    db.session.rollback()
    assert session_rows() == 0


@pytest.mark.smoke
def test_create_session_same_idempotency_key_returns_the_same_session_without_a_second_waha_call(tenant, waha_requests):
    first = sessions.create_session(tenant, TEST_ACTOR, name="Sales", idempotency_key="create-1")
    again = sessions.create_session(tenant, TEST_ACTOR, name="Sales", idempotency_key="create-1")

    assert again.id == first.id
    assert waha_requests.count("POST", "/api/sessions") == 1
    assert session_rows() == 1


def test_create_session_same_idempotency_key_for_another_request_is_409(tenant):
    sessions.create_session(tenant, TEST_ACTOR, name="Sales", idempotency_key="create-1")

    with pytest.raises(Conflict) as caught:
        sessions.create_session(tenant, TEST_ACTOR, name="Support", idempotency_key="create-1")

    assert caught.value.code == "idempotency_key_reused"
    assert session_rows() == 1


def test_create_session_idempotency_key_is_per_tenant(tenant):
    other = make_tenant("other")

    mine = sessions.create_session(tenant, TEST_ACTOR, name="Sales", idempotency_key="same-key")
    theirs = sessions.create_session(other, TEST_ACTOR, name="Sales", idempotency_key="same-key")

    assert mine.id != theirs.id


def test_create_session_failed_waha_call_does_not_burn_the_idempotency_key(tenant, sim):
    sim.fail_next(1, 503)
    with pytest.raises(Upstream):
        sessions.create_session(tenant, TEST_ACTOR, name="Sales", idempotency_key="retry-me")

    session = sessions.create_session(tenant, TEST_ACTOR, name="Sales", idempotency_key="retry-me")

    assert sim.session(session.external_name) is not None


def test_create_session_concurrent_requests_with_one_key_create_one_session(app, tenant, sim, waha_requests):
    sim.set_latency(100)
    tenant_id, results, errors = tenant.id, [], []

    def create() -> None:
        from portal.models import Tenant

        with app.app_context():
            try:
                owner = db.session.get(Tenant, tenant_id)
                results.append(sessions.create_session(owner, TEST_ACTOR, name="Sales", idempotency_key="race").id)
            except Exception as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors and len(set(results)) == 1
    assert waha_requests.count("POST", "/api/sessions") == 1


def test_create_session_rejects_an_overlong_idempotency_key(tenant):
    with pytest.raises(Invalid) as caught:
        sessions.create_session(tenant, TEST_ACTOR, name="Sales", idempotency_key="k" * 201)

    assert caught.value.details["fields"][0]["field"] == "Idempotency-Key"


def test_idempotency_records_older_than_a_day_are_purged(tenant):
    from portal.models import IdempotencyRecord
    from portal.services import idempotency

    sessions.create_session(tenant, TEST_ACTOR, name="Old", idempotency_key="old")
    sessions.create_session(tenant, TEST_ACTOR, name="New", idempotency_key="new")
    old = db.session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key.endswith(":old")))
    old.created_at = utcnow() - timedelta(days=2)
    db.session.commit()

    assert idempotency.purge() == 1
    assert [r.key for r in db.session.scalars(select(IdempotencyRecord))] == ["session.create:new"]


def test_create_session_is_audited(tenant):
    session = sessions.create_session(tenant, TEST_ACTOR, name="Sales")

    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "session.create"))
    assert (event.tenant_id, event.target_id, event.details["name"]) == (tenant.id, session.id, "Sales")


# ---------------------------------------------------------------------------------------------- reading


def test_get_session_of_another_tenant_is_not_found(tenant):
    other = make_tenant("other")
    theirs = sessions.create_session(other, TEST_ACTOR, name="Theirs")

    with pytest.raises(NotFound) as caught:
        sessions.get_session(tenant, theirs.id)

    assert caught.value.code == "session_not_found"


def test_list_sessions_shows_only_the_tenants_own(tenant):
    other = make_tenant("other")
    mine = sessions.create_session(tenant, TEST_ACTOR, name="Mine")
    sessions.create_session(other, TEST_ACTOR, name="Theirs")

    assert [s.id for s in sessions.list_sessions(tenant)] == [mine.id]


def test_list_sessions_filters_by_status(tenant, make_session):
    working = make_session("Working", status="WORKING")
    make_session("Fresh")

    assert [s.id for s in sessions.list_sessions(tenant, status="WORKING")] == [working.id]


@pytest.mark.parametrize(
    "call",
    [
        lambda t, sid: sessions.start_session(t, sid, TEST_ACTOR),
        lambda t, sid: sessions.stop_session(t, sid, TEST_ACTOR),
        lambda t, sid: sessions.restart_session(t, sid, TEST_ACTOR),
        lambda t, sid: sessions.logout_session(t, sid, TEST_ACTOR),
        lambda t, sid: sessions.delete_session(t, sid, TEST_ACTOR),
        lambda t, sid: sessions.sync_session(t, sid),
        lambda t, sid: sessions.get_qr(t, sid),
        lambda t, sid: sessions.request_pairing_code(t, sid, "+49 170 1234567", TEST_ACTOR),
        lambda t, sid: sessions.get_screenshot(t, sid),
    ],
    ids=["start", "stop", "restart", "logout", "delete", "sync", "qr", "pairing", "screenshot"],
)
def test_session_calls_on_another_tenants_session_are_not_found(tenant, sim, call):
    other = make_tenant("other")
    theirs = sessions.create_session(other, TEST_ACTOR, name="Theirs")

    with pytest.raises(NotFound):
        call(tenant, theirs.id)

    assert sim.session(theirs.external_name)["status"] != "STOPPED"


# ---------------------------------------------------------------------------------------------- control


def test_stop_session_stops_it_and_wants_it_stopped(tenant, sim, make_session):
    session = make_session(status="WORKING")

    stopped = sessions.stop_session(tenant, session.id, TEST_ACTOR)

    assert (stopped.status, stopped.desired_state) == ("STOPPED", "stopped")
    assert sim.session(session.external_name)["status"] == "STOPPED"


def test_start_session_runs_a_stopped_session_again(tenant, sim, make_session):
    session = make_session(status="WORKING")
    sessions.stop_session(tenant, session.id, TEST_ACTOR)

    started = sessions.start_session(tenant, session.id, TEST_ACTOR)

    assert started.desired_state == "running"
    assert started.status in ("STARTING", "WORKING")
    assert sim.session(session.external_name)["status"] != "STOPPED"


def test_restart_session_keeps_the_login(tenant, sim, make_session):
    session = make_session(status="WORKING")

    sessions.restart_session(tenant, session.id, TEST_ACTOR)

    wait_for(lambda: sessions.sync_session(tenant, session.id).status == "WORKING")


def test_logout_session_forgets_the_phone_and_waits_for_a_new_scan(tenant, sim, make_session):
    session = make_session(status="WORKING")

    sessions.logout_session(tenant, session.id, TEST_ACTOR)

    synced = wait_for(lambda: (s := sessions.sync_session(tenant, session.id)).status == "SCAN_QR_CODE" and s)
    assert synced.me is None
    assert sim.session(session.external_name)["paired"] is False


def test_start_session_recreates_a_session_waha_lost(tenant, sim, make_session):
    session = make_session()
    sim.simulator.delete_session(session.external_name)

    started = sessions.start_session(tenant, session.id, TEST_ACTOR)

    config = sim.session(session.external_name)["config"]
    assert config["metadata"]["portal.session_id"] == session.id
    assert config["webhooks"][0]["hmac"]["key"] == started.hmac_key


def test_control_is_audited_with_the_action(tenant, make_session):
    session = make_session()

    sessions.stop_session(tenant, session.id, TEST_ACTOR)

    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "session.stop"))
    assert event.target_id == session.id


def test_stop_session_when_waha_is_down_answers_503_and_changes_nothing(tenant, sim, make_session):
    session = make_session(status="WORKING")
    sim.fail_next(5, 503)

    with pytest.raises(Upstream):
        sessions.stop_session(tenant, session.id, TEST_ACTOR)

    sim.fail_next(0)
    row = sessions.get_session(tenant, session.id)
    assert (row.status, row.desired_state) == ("WORKING", "running")


def test_delete_session_removes_it_here_and_on_waha(tenant, sim, make_session):
    session = make_session()

    sessions.delete_session(tenant, session.id, TEST_ACTOR)

    assert session_rows() == 0
    assert sim.session(session.external_name) is None
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "session.delete")) is not None


def test_delete_session_already_gone_on_waha_still_deletes_the_row(tenant, sim, make_session):
    session = make_session()
    sim.simulator.delete_session(session.external_name)

    sessions.delete_session(tenant, session.id, TEST_ACTOR)

    assert session_rows() == 0


def test_delete_session_when_waha_is_down_keeps_the_row(tenant, sim, make_session):
    session = make_session()
    sim.fail_next(5, 503)

    with pytest.raises(Upstream):
        sessions.delete_session(tenant, session.id, TEST_ACTOR)

    sim.fail_next(0)
    assert session_rows() == 1


# ---------------------------------------------------------------------------------------------- sync and status


def test_sync_session_records_status_me_and_sync_time(tenant, sim, make_session):
    session = make_session()
    sim.scan(session.external_name, phone="491701111111")

    synced = sessions.sync_session(tenant, session.id)

    assert synced.status == "WORKING"
    assert synced.me["id"] == "491701111111@c.us"
    assert synced.last_synced_at is not None
    assert synced.engine == "GOWS"


def test_sync_session_missing_on_waha_is_409_and_keeps_the_status(tenant, sim, make_session):
    session = make_session(status="WORKING")
    sim.simulator.delete_session(session.external_name)

    with pytest.raises(Conflict) as caught:
        sessions.sync_session(tenant, session.id)

    assert caught.value.code == "session_missing_on_waha"
    row = sessions.get_session(tenant, session.id)
    assert row.status == "WORKING" and row.last_synced_at is not None


def test_sync_all_sessions_updates_every_session_with_one_list_call(tenant, sim, make_session, waha_requests):
    first, second = make_session("One"), make_session("Two")
    sim.scan(first.external_name)
    sim.scan(second.external_name)
    waha_requests.clear()

    synced = sessions.sync_all_sessions(tenant)

    assert {s.status for s in synced} == {"WORKING"}
    assert waha_requests.count("GET", "/api/sessions") == 1


def test_sync_all_sessions_leaves_other_tenants_alone(tenant, sim, make_session):
    other = make_tenant("other")
    theirs = make_session("Theirs", owner=other)
    sim.scan(theirs.external_name)

    sessions.sync_all_sessions(tenant)

    assert sessions.get_session(other, theirs.id).status != "WORKING"


def test_apply_status_records_a_change_with_time_and_audit(tenant, make_session):
    session = make_session()
    before = utcnow()

    changed = sessions.apply_status(session, "FAILED", source="event")
    db.session.commit()

    assert changed is True
    assert session.status == "FAILED" and session.status_changed_at >= before
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "session.status"))
    assert event.details["to"] == "FAILED" and event.details["source"] == "event"


def test_apply_status_same_status_is_not_a_change(tenant, make_session):
    session = make_session()

    assert sessions.apply_status(session, session.status) is False


def test_apply_status_drops_the_cached_qr(tenant, make_session):
    session = make_session(status="SCAN_QR_CODE")
    sessions.get_qr(tenant, session.id)
    assert redis_store.client.exists(f"qr:{session.id}")

    sessions.apply_status(session, "WORKING")

    assert not redis_store.client.exists(f"qr:{session.id}")


# ---------------------------------------------------------------------------------------------- QR


def test_get_qr_returns_a_png_while_waiting_for_the_scan(tenant, make_session):
    session = make_session(status="SCAN_QR_CODE")

    qr = sessions.get_qr(tenant, session.id)

    assert qr.mimetype == "image/png"
    import base64

    assert base64.b64decode(qr.data).startswith(b"\x89PNG")
    assert 0 < qr.expires_in <= 60


def test_get_qr_before_the_session_shows_one_is_409(tenant, make_session):
    session = make_session(status="WORKING")

    with pytest.raises(Conflict) as caught:
        sessions.get_qr(tenant, session.id)

    assert caught.value.code == "session_not_ready"
    assert caught.value.details["status"] == "WORKING"


@pytest.mark.smoke
def test_get_qr_second_call_within_the_cache_window_makes_no_waha_call(tenant, make_session, waha_requests):
    session = make_session(status="SCAN_QR_CODE")
    waha_requests.clear()

    first = sessions.get_qr(tenant, session.id)
    second = sessions.get_qr(tenant, session.id)

    assert second.data == first.data
    assert waha_requests.count("GET", "/auth/qr") == 1


def test_get_qr_after_a_status_event_fetches_a_fresh_qr(tenant, make_session, waha_requests):
    session = make_session(status="SCAN_QR_CODE")
    sessions.get_qr(tenant, session.id)
    waha_requests.clear()

    sessions.apply_status(session, "SCAN_QR_CODE", source="event")  # the QR rotated
    sessions.get_qr(tenant, session.id)

    assert waha_requests.count("GET", "/auth/qr") == 1


def test_get_qr_fifty_concurrent_viewers_make_one_waha_call(app, tenant, sim, make_session, waha_requests):
    session = make_session(status="SCAN_QR_CODE")
    waha_requests.clear()
    sim.set_latency(50)
    tenant_id, results, errors = tenant.id, [], []
    barrier = threading.Barrier(50)

    def view() -> None:
        from portal.models import Tenant

        with app.app_context():
            try:
                barrier.wait()  # before touching the database: the pool has fewer connections than viewers
                owner = db.session.get(Tenant, tenant_id)
                results.append(sessions.get_qr(owner, session.id).data)
            except Exception as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=view) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors and len(results) == 50 and len(set(results)) == 1
    assert waha_requests.count("GET", "/auth/qr") == 1


def test_get_qr_when_waha_moved_on_records_the_new_status_and_is_409(tenant, sim, make_session):
    session = make_session(status="SCAN_QR_CODE")
    sim.scan(session.external_name)

    with pytest.raises(Conflict) as caught:
        sessions.get_qr(tenant, session.id)

    assert caught.value.details["status"] == "WORKING"
    assert sessions.get_session(tenant, session.id).status == "WORKING"


def test_get_qr_expiry_counts_down_the_twenty_second_rotation_after_the_first_minute(tenant, make_session):
    session = make_session(status="SCAN_QR_CODE")
    session.status_changed_at = utcnow() - timedelta(seconds=75)
    db.session.commit()

    qr = sessions.get_qr(tenant, session.id)

    assert 1 <= qr.expires_in <= 5


def test_drop_qr_cache_forgets_the_image(tenant, make_session):
    session = make_session(status="SCAN_QR_CODE")
    sessions.get_qr(tenant, session.id)

    sessions.drop_qr_cache(session.id)

    assert not redis_store.client.exists(f"qr:{session.id}")


# ---------------------------------------------------------------------------------------------- pairing, screen


def test_request_pairing_code_returns_the_code_waha_made(tenant, sim, make_session):
    session = make_session(status="SCAN_QR_CODE")

    code = sessions.request_pairing_code(tenant, session.id, "+49 170 1234567", TEST_ACTOR)

    assert code == sim.session(session.external_name)["pairingCode"]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "session.pairing_code"))
    assert code not in str(event.details)


def test_request_pairing_code_rejects_an_invalid_phone(tenant, make_session):
    session = make_session(status="SCAN_QR_CODE")

    with pytest.raises(Invalid) as caught:
        sessions.request_pairing_code(tenant, session.id, "12", TEST_ACTOR)

    assert caught.value.details["fields"][0]["field"] == "phone"


def test_get_screenshot_returns_an_image(tenant, make_session):
    session = make_session(status="SCAN_QR_CODE")

    shot = sessions.get_screenshot(tenant, session.id)

    assert shot["mimetype"] == "image/png" and shot["data"]


def test_get_screenshot_of_a_stopped_session_is_409(tenant, make_session):
    session = make_session()
    sessions.stop_session(tenant, session.id, TEST_ACTOR)

    with pytest.raises(Conflict) as caught:
        sessions.get_screenshot(tenant, session.id)

    assert caught.value.code == "session_not_ready"


# ---------------------------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    "error, status, code",
    [
        (waha_errors.WahaUnavailable(503, "", "down"), 503, "waha_unavailable"),
        (waha_errors.WahaTimeout(None, "", "slow"), 503, "waha_unavailable"),
        (waha_errors.WahaCircuitOpen(None, "", "open"), 503, "waha_unavailable"),
        (waha_errors.WahaUnauthorized(401, "", "Unauthorized"), 503, "waha_unavailable"),
        (
            waha_errors.WahaSessionNotReady(422, "", "x", session_status="STOPPED", expected=["WORKING"]),
            409,
            "session_not_ready",
        ),
        (
            waha_errors.WahaValidationError(400, "", "bad", messages=["chatId must be a string"]),
            400,
            "validation_error",
        ),
        (waha_errors.WahaNotImplemented(501, "", "not implemented"), 400, "not_supported"),
        (waha_errors.WahaNotFound(404, "", "Session not found"), 404, "not_found"),
    ],
)
def test_map_waha_error_gives_the_documented_status_and_code(ctx, error, status, code):
    mapped = sessions.map_waha_error(error)

    assert (mapped.status, mapped.code) == (status, code)


def test_map_waha_error_session_not_ready_carries_the_status(ctx):
    error = waha_errors.WahaSessionNotReady(422, "", "x", session_status="SCAN_QR_CODE", expected=["WORKING"])

    assert sessions.map_waha_error(error).details["status"] == "SCAN_QR_CODE"


def test_map_waha_error_unavailable_tells_when_to_retry(ctx):
    assert sessions.map_waha_error(waha_errors.WahaUnavailable(None, "", "refused")).retry_after >= 1


def test_waha_config_for_rebuilds_the_stored_session(app: Flask, tenant):
    session = sessions.create_session(
        tenant, TEST_ACTOR, name="Sales", config={"metadata": {"team": "north"}, "debug": True}
    )

    config = sessions.waha_config_for(session)

    assert config["debug"] is True
    assert config["metadata"]["team"] == "north"
    assert config["webhooks"][0]["url"].endswith(f"/webhooks/waha?session={session.id}")
