"""Session pages: list with live badges, create form, detail with a self-refreshing QR, pairing code,
screenshot, and the controls behind a confirmation."""

from __future__ import annotations

import re

import pytest

from portal.extensions import db, redis_store
from portal.models import AuditEvent, WahaSession
from portal.services import sessions as sessions_service
from tests.builders import TEST_ACTOR, make_tenant, make_user, new_session, scanning_session, working_session
from tests.helpers import csrf_token

HX = {"HX-Request": "true"}


def hx_post(client, url, data=None, token_page="/sessions/"):
    """A POST as htmx sends it: CSRF token in the X-CSRFToken header, HX-Request set."""
    return client.post(url, data=data or {}, headers={**HX, "X-CSRFToken": csrf_token(client, token_page)})


# ---- list ----------------------------------------------------------------------------------------------------


def test_sessions_page_lists_sessions_with_status_badges(owner_client, tenant, sim):
    session = working_session(tenant, sim, "Support")
    page = owner_client.get("/sessions/").get_data(as_text=True)
    assert "Support" in page
    assert 'data-status="WORKING"' in page
    assert "+491701234567" in page
    assert f"/sessions/{session.id}" in page


def test_sessions_page_without_sessions_invites_to_create_one(owner_client):
    page = owner_client.get("/sessions/").get_data(as_text=True)
    assert "No sessions yet" in page
    assert "Create your first session" in page


def test_session_list_fragment_polls_itself_for_htmx(owner_client, tenant):
    new_session(tenant, "Sales")
    response = owner_client.get("/sessions/", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in body
    assert 'id="session-list"' in body and 'hx-trigger="every 5s"' in body
    assert "Sales" in body


def test_sessions_page_hides_other_tenants_sessions(owner_client, tenant):
    other = make_tenant("globex", name="Globex")
    new_session(other, "Globex line")
    assert "Globex line" not in owner_client.get("/sessions/").get_data(as_text=True)


# ---- create --------------------------------------------------------------------------------------------------


def test_create_form_creates_session_and_opens_it(owner_client, tenant, sim):
    token = csrf_token(owner_client, "/sessions/new")
    response = owner_client.post(
        "/sessions/new",
        data={
            "csrf_token": token,
            "name": "Support",
            "engine": "",
            "webhook_url": "https://hooks.example.com/waha",
            "webhook_events": ["session.status", "message"],
            "idempotency_key": "k-1",
        },
    )
    session = db.session.scalar(db.select(WahaSession).where(WahaSession.tenant_id == tenant.id))
    assert response.status_code == 303
    # first the session's webhook signing secret, shown once, then on to the session to link a phone
    assert f"/sessions/{session.id}/webhook-secret/" in response.headers["Location"]
    assert session.name == "Support" and session.webhook_url == "https://hooks.example.com/waha"
    assert sim.session(session.external_name) is not None
    shown = owner_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Scan the QR code" in shown and f'href="/sessions/{session.id}"' in shown


def test_create_with_taken_name_shows_error_next_to_name(owner_client, tenant):
    new_session(tenant, "Support")
    token = csrf_token(owner_client, "/sessions/new")
    response = owner_client.post("/sessions/new", data={"csrf_token": token, "name": "Support", "engine": ""})
    page = response.get_data(as_text=True)
    assert response.status_code == 409  # the name is taken: the form again, with why
    assert re.search(r'id="name-error"[^>]*>[^<]*taken', page)
    assert 'value="Support"' in page


def test_create_with_bad_webhook_url_keeps_the_form(owner_client):
    token = csrf_token(owner_client, "/sessions/new")
    response = owner_client.post(
        "/sessions/new", data={"csrf_token": token, "name": "Support", "engine": "", "webhook_url": "not a url"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter a full http:// or https:// address." in page
    assert 'value="Support"' in page


def test_create_without_csrf_token_is_rejected(owner_client, tenant):
    response = owner_client.post("/sessions/new", data={"name": "Support", "engine": ""})
    assert response.status_code == 400
    assert "The form expired" in response.get_data(as_text=True)
    assert db.session.scalar(db.select(WahaSession).where(WahaSession.tenant_id == tenant.id)) is None


def test_viewer_sees_no_create_button(viewer_client):
    page = viewer_client.get("/sessions/").get_data(as_text=True)
    assert "New session" not in page and "Create your first session" not in page


def test_viewer_cannot_create_a_session(viewer_client, tenant):
    response = viewer_client.post(
        "/sessions/new", data={"csrf_token": csrf_token(viewer_client, "/sessions/"), "name": "Sneaky", "engine": ""}
    )
    assert response.status_code == 403
    assert db.session.scalar(db.select(WahaSession).where(WahaSession.tenant_id == tenant.id)) is None


# ---- detail, QR and live status ------------------------------------------------------------------------------


def test_detail_shows_qr_image_and_its_lifetime_while_scanning(owner_client, tenant):
    session = scanning_session(tenant)
    page = owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', page)
    assert "data-countdown=" in page
    assert "Linked devices" in page
    assert f'hx-get="/sessions/{session.id}/live"' in page and 'hx-trigger="every 3s"' in page


def test_live_fragment_keeps_polling_while_scanning(owner_client, tenant):
    session = scanning_session(tenant)
    response = owner_client.get(f"/sessions/{session.id}/live?shown=SCAN_QR_CODE", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in body
    assert 'hx-trigger="every 3s"' in body and "data:image/png;base64," in body
    assert "status-announcer" not in body  # nothing new to announce on a mere refresh


def test_live_fragment_shows_working_once_scanned_and_redraws_the_controls(owner_client, tenant, sim):
    session = scanning_session(tenant)
    sim.scan(session.external_name, phone="491701234567")
    # no webhook is processed here: the fragment's own sync with WAHA finds the new state
    response = owner_client.get(f"/sessions/{session.id}/live?shown=SCAN_QR_CODE", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-status="WORKING"' in body and "+491701234567" in body
    assert re.search(r'id="status-announcer"[^>]*hx-swap-oob="true">Session status: Working\.<', body)
    assert 'hx-trigger="every 5s"' in body  # it keeps following the session once WORKING
    assert re.search(r'<div id="pairing-panel" hx-swap-oob="true">\s*</div>', body)
    assert 'id="session-actions"' in body and "hx-swap-oob" in body.split('id="session-actions"')[1][:80]
    assert db.session.get(WahaSession, session.id).status == "WORKING"


def test_live_fragment_of_stopped_session_keeps_following_it(owner_client, tenant):
    session = scanning_session(tenant)
    sessions_service.stop_session(tenant, session.id, sessions_service.SYSTEM)
    response = owner_client.get(f"/sessions/{session.id}/live?shown=STOPPED", headers=HX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert 'data-status="STOPPED"' in body and 'hx-trigger="every 5s"' in body
    assert 'id="session-actions"' not in body  # nothing changed: the controls stay as they are


def test_live_fragment_of_working_session_notices_a_failure_without_a_webhook(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    sim.fail(session.external_name)
    redis_store.client.delete(f"portal:web:sync:{session.id}")  # the shared sync window has passed
    response = owner_client.get(f"/sessions/{session.id}/live?shown=WORKING", headers=HX)
    body = response.get_data(as_text=True)
    assert 'data-status="FAILED"' in body and "WhatsApp reported a failure" in body
    assert "Session status: Failed" in body and ">Start<" in body


def test_session_failed_while_waiting_for_a_scan_says_the_qr_expired(owner_client, tenant, sim):
    session = scanning_session(tenant)
    sim.fail(session.external_name)  # what WAHA does once its last QR code expired unscanned
    sessions_service.sync_session(tenant, session.id)
    page = owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    assert "The QR code expired before it was scanned. Press Restart to get a new one." in page
    assert "WhatsApp reported a failure" not in page


def test_session_failed_while_working_reports_a_whatsapp_failure(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    sim.fail(session.external_name)
    sessions_service.sync_session(tenant, session.id)
    page = owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    assert "WhatsApp reported a failure" in page and "QR code expired" not in page


def test_detail_of_working_session_keeps_following_its_status(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    page = owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    assert "Connected as" in page
    assert f'hx-get="/sessions/{session.id}/live"' in page and 'hx-trigger="every 5s"' in page


@pytest.mark.parametrize("path", ["", "/live", "/screenshot", "/stop"])
def test_other_tenants_session_pages_are_not_found(owner_client, path):
    other = make_tenant("globex", name="Globex")
    session = new_session(other, "Globex line")
    assert owner_client.get(f"/sessions/{session.id}{path}").status_code == 404


@pytest.mark.parametrize("path,data", [("/stop", {}), ("/delete", {}), ("/pairing-code", {"phone": "+49 170 1234567"})])
def test_posting_to_other_tenants_session_is_not_found(owner_client, sim, path, data):
    other = make_tenant("globex", name="Globex")
    session = new_session(other, "Globex line")
    response = owner_client.post(
        f"/sessions/{session.id}{path}", data={**data, "csrf_token": csrf_token(owner_client, "/sessions/")}
    )
    assert response.status_code == 404
    assert sim.session(session.external_name)["status"] != "STOPPED"


# ---- pairing code and screenshot -----------------------------------------------------------------------------


def test_pairing_code_form_shows_the_code(owner_client, tenant):
    session = scanning_session(tenant)
    response = hx_post(owner_client, f"/sessions/{session.id}/pairing-code", {"phone": "+49 170 1234567"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.search(r'id="pairing-code">[A-Z0-9]{4}-[A-Z0-9]{4}<', body)


def test_pairing_code_with_bad_phone_shows_error_in_place(owner_client, tenant):
    session = scanning_session(tenant)
    response = hx_post(owner_client, f"/sessions/{session.id}/pairing-code", {"phone": "call me"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="phone-error"' in body and 'value="call me"' in body


def test_viewer_cannot_request_a_pairing_code(viewer_client, tenant):
    session = scanning_session(tenant)
    response = hx_post(viewer_client, f"/sessions/{session.id}/pairing-code", {"phone": "+49 170 1234567"})
    assert response.status_code == 200  # htmx gets the refusal as a fragment it can show
    assert "Your role does not allow this." in response.get_data(as_text=True)
    assert "pairing-code" not in response.get_data(as_text=True)


def test_viewer_sees_no_qr_code_while_scanning(viewer_client, tenant):
    session = scanning_session(tenant)
    page = viewer_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    live = viewer_client.get(f"/sessions/{session.id}/live?shown=SCAN_QR_CODE", headers=HX).get_data(as_text=True)
    for body in (page, live):
        assert "data:image/png;base64," not in body
        assert "Waiting for a phone to be linked" in body
    assert 'id="pairing-panel"' not in page


def test_viewer_gets_no_screenshot_of_the_qr_code(viewer_client, tenant):
    session = scanning_session(tenant)
    body = viewer_client.get(f"/sessions/{session.id}/screenshot", headers=HX).get_data(as_text=True)
    assert "data:image/" not in body
    assert "Your role does not allow this" in body  # the words of a `forbidden` refusal (portal.web.wording)


def test_operator_sees_the_qr_code_while_scanning(login, tenant):
    operator = login(make_user(tenant, "operator", email="operator@acme.example.com"))
    session = scanning_session(tenant)
    page = operator.get(f"/sessions/{session.id}").get_data(as_text=True)
    assert "data:image/png;base64," in page and 'id="pairing-panel"' in page


def test_screenshot_fragment_shows_an_image(owner_client, tenant):
    session = scanning_session(tenant)
    body = owner_client.get(f"/sessions/{session.id}/screenshot", headers=HX).get_data(as_text=True)
    assert re.search(r'<img class="screenshot" src="data:image/(jpeg|png);base64,', body)


def test_screenshot_of_stopped_session_explains_why_not(owner_client, tenant):
    session = scanning_session(tenant)
    sessions_service.stop_session(tenant, session.id, sessions_service.SYSTEM)
    body = owner_client.get(f"/sessions/{session.id}/screenshot", headers=HX).get_data(as_text=True)
    assert "No screenshot right now" in body


# ---- controls --------------------------------------------------------------------------------------------------


def test_controls_ask_for_confirmation(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    page = owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    for action in ("stop", "restart", "logout", "delete"):
        assert re.search(
            rf'href="/sessions/{session.id}/{action}"\s+hx-post="/sessions/{session.id}/{action}"\s+'
            r'hx-confirm="[^"]+"',
            page,
        ), action


def test_viewer_sees_no_controls(viewer_client, tenant, sim):
    session = working_session(tenant, sim)
    page = viewer_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    assert "hx-confirm" not in page and "Send a message" not in page


def test_stop_by_htmx_stops_the_session_and_reloads_the_page(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = hx_post(owner_client, f"/sessions/{session.id}/stop")
    assert response.headers["HX-Redirect"] == f"/sessions/{session.id}"
    assert sim.session(session.external_name)["status"] == "STOPPED"
    assert db.session.get(WahaSession, session.id).status == "STOPPED"


def test_confirm_page_works_without_scripts(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    page = owner_client.get(f"/sessions/{session.id}/restart").get_data(as_text=True)
    assert "Restart this session?" in page
    response = owner_client.post(
        f"/sessions/{session.id}/restart",
        data={"csrf_token": csrf_token(owner_client, f"/sessions/{session.id}/restart")},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/sessions/{session.id}"
    audit = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action.like("session.restart%")))
    assert audit is not None and audit.actor_label == "owner@acme.example.com"


def test_delete_removes_the_session_and_returns_to_the_list(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = hx_post(owner_client, f"/sessions/{session.id}/delete")
    assert response.headers["HX-Redirect"] == "/sessions/"
    assert db.session.get(WahaSession, session.id) is None
    assert sim.session(session.external_name) is None


def test_delete_without_scripts_returns_to_the_list(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = owner_client.post(
        f"/sessions/{session.id}/delete",
        data={"csrf_token": csrf_token(owner_client, f"/sessions/{session.id}/delete")},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/sessions/"
    assert "Session deleted." in owner_client.get("/sessions/").get_data(as_text=True)


def test_open_page_of_a_session_deleted_meanwhile_moves_to_the_list(owner_client, tenant):
    session = scanning_session(tenant)
    sessions_service.delete_session(tenant, session.id, TEST_ACTOR)
    response = owner_client.get(f"/sessions/{session.id}/live", headers=HX)
    assert response.headers["HX-Redirect"] == "/sessions/"
    assert "That session no longer exists" in owner_client.get("/sessions/").get_data(as_text=True)


def test_a_working_session_whose_server_is_down_promises_nothing(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    sim.fail_next(50, 503)
    session.server.health = "down"  # as the fleet's health check leaves it
    db.session.commit()

    # every refresh, whether it asks WAHA (at most every few seconds) or not, tells the same story
    for _ in range(3):
        body = owner_client.get(f"/sessions/{session.id}/live", headers=HX).get_data(as_text=True)
        assert "You can send and receive messages" not in body and "nothing was done" not in body
        assert "Working when the portal last heard from the WhatsApp server." in body
        assert "The WhatsApp server cannot be reached right now. This page keeps checking by itself." in body


def test_a_scanning_session_whose_server_is_down_raises_one_alarm(owner_client, tenant, sim):
    session = scanning_session(tenant)
    sim.fail_next(50, 503)
    session.server.health = "down"
    db.session.commit()

    for _ in range(3):
        body = owner_client.get(f"/sessions/{session.id}/live", headers=HX).get_data(as_text=True)
        assert body.count('role="alert"') == 1 and "nothing was done" not in body
        assert "The QR code appears here once the WhatsApp server answers again." in body


def test_control_failure_is_shown_in_place(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    token = csrf_token(owner_client, "/sessions/")
    sim.fail_next(5, 503)
    response = owner_client.post(f"/sessions/{session.id}/stop", headers={**HX, "X-CSRFToken": token})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Stop did not work" in body and "HX-Redirect" not in response.headers


def test_control_without_csrf_token_is_rejected(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = owner_client.post(f"/sessions/{session.id}/stop")
    assert response.status_code == 400
    assert "The form expired" in response.get_data(as_text=True)
    assert sim.session(session.external_name)["status"] == "WORKING"


def test_viewer_cannot_stop_a_session(viewer_client, tenant, sim):
    session = working_session(tenant, sim)
    response = viewer_client.post(
        f"/sessions/{session.id}/stop", data={"csrf_token": csrf_token(viewer_client, "/sessions/")}
    )
    assert response.status_code == 403
    assert sim.session(session.external_name)["status"] == "WORKING"


def test_unknown_control_is_not_found(owner_client, tenant):
    session = new_session(tenant)
    assert owner_client.get(f"/sessions/{session.id}/explode").status_code == 404
