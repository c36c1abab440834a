"""Every error a person sees is a sentence about what they can do: no class names, no WAHA internals."""

from __future__ import annotations

import html

from portal.models import utcnow
from portal.services import outbox, upstream
from tests.builders import scanning_session, stored_message, working_session
from tests.helpers import csrf_token

HX = {"HX-Request": "true"}
RAW = ("WahaUnavailable", "WAHA:", "WAHA 5", "it must be", "WAHA failed", "Traceback")


def _clean(body: str) -> None:
    for raw in RAW:
        assert raw not in body, f"{raw!r} reached the page"


def test_failed_send_in_the_log_says_what_to_do(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, status="ERROR", error="WAHA: cannot reach http://127.0.0.1:3000 (ConnectionError)")
    body = owner_client.get("/messages/").get_data(as_text=True)
    assert "Not sent: the WhatsApp server could not be reached. Send it again." in body
    _clean(body)


def test_the_portals_own_reasons_are_said_once_in_the_readers_language(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    for code, reason in upstream.REASONS.items():
        stored_message(tenant, session, status="ERROR", error=f"Not sent: {reason}", body=code)
    stored_message(tenant, session, status="ERROR", error=outbox.NOT_CONFIRMED, body="never confirmed")

    english = html.unescape(owner_client.get("/messages/").get_data(as_text=True))
    portuguese = html.unescape(
        owner_client.get("/messages/", headers={"Accept-Language": "pt-BR"}).get_data(as_text=True)
    )

    for body in (english, portuguese):
        assert "Not sent: Not sent" not in body and "Não enviada: Not sent" not in body
        assert not [reason for reason in upstream.REASONS.values() if reason in body]
        _clean(body)
    assert "Not sent: the WhatsApp server could not be reached. Send it again." in english
    assert "Not sent: WhatsApp never confirmed this message." in english


def test_the_log_marks_messages_deleted_or_edited_since(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, body="as sent", revoked_at=utcnow())
    stored_message(tenant, session, body="changed text", edited_at=utcnow())
    stored_message(tenant, session, body="plain")

    rows = {
        body: row
        for row in owner_client.get("/messages/").get_data(as_text=True).split("<tr ")
        for body in ("as sent", "changed text", "plain")
        if f">{body}<" in row
    }

    assert 'class="badge badge-deleted">deleted<' in rows["as sent"]
    assert 'class="badge">edited<' in rows["changed text"]
    assert "badge" not in rows["plain"]
    portuguese = owner_client.get("/messages/", headers={"Accept-Language": "pt-BR"}).get_data(as_text=True)
    assert ">apagada<" in portuguese


def test_control_failure_when_waha_is_down_says_what_to_do(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    token = csrf_token(owner_client, "/sessions/")
    sim.fail_next(5, 503)
    body = owner_client.post(f"/sessions/{session.id}/stop", headers={**HX, "X-CSRFToken": token}).get_data(
        as_text=True
    )
    assert "The WhatsApp server cannot be reached right now, so nothing was done." in body
    _clean(body)


def test_screenshot_of_a_session_not_scanning_says_what_to_do(owner_client, tenant, sim):
    session = scanning_session(tenant)
    sim.fail_next(5, 503)
    body = owner_client.get(f"/sessions/{session.id}/screenshot", headers=HX).get_data(as_text=True)
    assert "No screenshot right now." in body and "Try again in a minute" in body
    _clean(body)


def test_health_of_a_server_that_is_down_names_no_exception(owner_client, sim):
    sim.fail_next(10, 503)
    body = owner_client.get("/dashboard/health", headers=HX).get_data(as_text=True)
    assert "badge-down" in body and "Cannot be reached right now." in body
    _clean(body)


def test_failed_send_with_an_exception_name_is_reworded(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, status="ERROR", error="WahaUnavailable: WAHA: cannot reach http://x")
    body = owner_client.get("/messages/").get_data(as_text=True)
    assert "Not sent. Send it again; if it fails again, tell your administrator." in body
    _clean(body)
