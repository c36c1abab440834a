"""/waha/sessions endpoints against the WAHA simulator: answers, state changes and every error path."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from portal.services import audit
from tests.builders import create_session, make_token, wait_for_status
from tests.helpers import Api

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _error(response: Any) -> dict[str, Any]:
    return response.get_json()["error"]


# ---- create ---------------------------------------------------------------------------------------------------


def test_create_session_answers_201_with_dto(api: Api, tenant: Any) -> None:
    response = api.post(
        "/waha/sessions",
        json={
            "sessionName": "support",
            "webhookUrl": "https://example.com/h",
            "webhookEvents": ["message"],
            "config": {"metadata": {"team": "a"}},
        },
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["name"] == "support"
    assert body["tenantId"] == str(tenant.id)
    assert body["webhookUrl"] == "https://example.com/h"
    assert body["webhookEvents"] == ["message"]
    assert body["metadata"] == {"team": "a"}
    assert body["desiredState"] == "running"
    assert body["externalSessionId"]


def test_create_session_starts_it_on_waha(api: Api, sim: Any) -> None:
    body = create_session(api)
    assert sim.session(body["externalSessionId"]) is not None


def test_create_session_is_audited_with_token_actor(api: Api, tenant: Any) -> None:
    body = create_session(api)
    event = audit.latest(tenant.id, "session.create")
    assert event.target_id == body["id"]
    assert event.actor_type == "token"
    assert event.ip == "127.0.0.1"
    assert event.request_id


def test_create_session_rejects_unknown_field(api: Api) -> None:
    response = api.post("/waha/sessions", json={"sessionName": "x", "colour": "blue"})
    assert response.status_code == 400
    assert _error(response)["code"] == "validation_error"
    assert _error(response)["details"]["fields"] == [{"field": "colour", "message": "Unknown field."}]


def test_create_session_lists_every_bad_field(api: Api) -> None:
    response = api.post("/waha/sessions", json={"engine": "TURBO", "webhookUrl": "ftp://x"})
    fields = {f["field"] for f in _error(response)["details"]["fields"]}
    assert fields == {"sessionName", "engine", "webhookUrl"}


def test_create_session_rejects_non_json_body(api: Api) -> None:
    response = api.post("/waha/sessions", data="name=x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "body"


def test_create_session_service_error_uses_dto_field_name(api: Api) -> None:
    response = api.post("/waha/sessions", json={"sessionName": "x", "webhookEvents": ["no.such.event"]})
    assert response.status_code == 400
    assert [f["field"] for f in _error(response)["details"]["fields"]] == ["webhookEvents"]


def test_create_session_with_taken_name_is_409(api: Api) -> None:
    create_session(api, "support")
    response = api.post("/waha/sessions", json={"sessionName": "support"})
    assert response.status_code == 409
    assert _error(response)["code"] == "session_exists"
    assert [f["field"] for f in _error(response)["details"]["fields"]] == ["sessionName"]


def test_create_session_over_tenant_limit_is_409(api: Api, tenant: Any) -> None:
    from portal.extensions import db

    tenant.max_sessions = 1
    db.session.commit()
    create_session(api, "one")
    response = api.post("/waha/sessions", json={"sessionName": "two"})
    assert response.status_code == 409
    assert _error(response)["code"] == "quota_exceeded"


def test_create_session_repeated_idempotency_key_creates_once(api: Api, sim: Any) -> None:
    headers = {"Idempotency-Key": "create-support-1"}
    first = api.post("/waha/sessions", json={"sessionName": "support"}, headers=headers)
    second = api.post("/waha/sessions", json={"sessionName": "support"}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.get_json()["id"] == second.get_json()["id"]
    assert len(api.get("/waha/sessions").get_json()["data"]) == 1


def test_create_session_idempotency_key_with_other_body_is_409(api: Api) -> None:
    headers = {"Idempotency-Key": "create-1"}
    api.post("/waha/sessions", json={"sessionName": "support"}, headers=headers)
    response = api.post("/waha/sessions", json={"sessionName": "sales"}, headers=headers)
    assert response.status_code == 409
    assert _error(response)["code"] == "idempotency_key_reused"


def test_create_session_with_overlong_idempotency_key_is_400(api: Api) -> None:
    response = api.post("/waha/sessions", json={"sessionName": "x"}, headers={"Idempotency-Key": "k" * 300})
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "Idempotency-Key"


# ---- read -----------------------------------------------------------------------------------------------------


def test_list_sessions_returns_tenant_sessions(api: Api, other_session: Any) -> None:
    create_session(api, "a")
    create_session(api, "b")
    body = api.get("/waha/sessions").get_json()
    assert sorted(s["name"] for s in body["data"]) == ["a", "b"]
    assert body["nextCursor"] is None


def test_list_sessions_filters_by_status(api: Api, session: Any) -> None:
    create_session(api, "other")
    body = api.get("/waha/sessions?status=SCAN_QR_CODE").get_json()
    assert [s["id"] for s in body["data"]] == [session["id"]]


def test_list_sessions_with_unknown_status_is_400(api: Api) -> None:
    response = api.get("/waha/sessions?status=SLEEPING")
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "status"


def test_list_sessions_with_unknown_query_parameter_is_400(api: Api) -> None:
    assert api.get("/waha/sessions?stauts=WORKING").status_code == 400


def test_get_session_answers_dto(api: Api, session: Any) -> None:
    response = api.get(f"/waha/sessions/{session['id']}")
    assert response.status_code == 200
    assert response.get_json()["status"] == "SCAN_QR_CODE"


def test_get_unknown_session_is_404(api: Api) -> None:
    response = api.get("/waha/sessions/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert _error(response)["code"] == "session_not_found"


# ---- control --------------------------------------------------------------------------------------------------


def test_stop_session_stops_it(api: Api, session: Any, sim: Any) -> None:
    response = api.post(f"/waha/sessions/{session['id']}/stop")
    assert response.status_code == 200
    assert response.get_json()["desiredState"] == "stopped"
    assert sim.session(session["externalSessionId"])["status"] == "STOPPED"


def test_start_session_starts_a_stopped_one(api: Api, session: Any) -> None:
    api.post(f"/waha/sessions/{session['id']}/stop")
    response = api.post(f"/waha/sessions/{session['id']}/start")
    assert response.status_code == 200
    assert response.get_json()["desiredState"] == "running"
    wait_for_status(api, session["id"], "SCAN_QR_CODE")


def test_restart_session_keeps_it_running(api: Api, working_session: Any) -> None:
    response = api.post(f"/waha/sessions/{working_session['id']}/restart")
    assert response.status_code == 200
    wait_for_status(api, working_session["id"], "WORKING")


def test_logout_session_needs_a_new_scan(api: Api, working_session: Any) -> None:
    response = api.post(f"/waha/sessions/{working_session['id']}/logout")
    assert response.status_code == 200
    wait_for_status(api, working_session["id"], "SCAN_QR_CODE")


def test_sync_session_reads_status_from_waha(api: Api, session: Any, sim: Any) -> None:
    sim.scan(session["externalSessionId"])
    body = wait_for_status(api, session["id"], "WORKING")
    assert body["me"]["id"].startswith("491701234567")


@pytest.mark.parametrize("action", ["start", "stop", "restart", "logout"])
def test_session_control_is_audited(api: Api, tenant: Any, session: Any, action: str) -> None:
    api.post(f"/waha/sessions/{session['id']}/{action}")
    event = audit.latest(tenant.id, f"session.{action}")
    assert event is not None and event.target_id == session["id"]
    assert event.actor_type == "token"


def test_delete_session_answers_204_and_removes_it(api: Api, session: Any, sim: Any) -> None:
    response = api.delete(f"/waha/sessions/{session['id']}")
    assert response.status_code == 204
    assert response.get_data() == b""
    assert api.get(f"/waha/sessions/{session['id']}").status_code == 404
    assert sim.session(session["externalSessionId"]) is None


def test_delete_session_is_audited(api: Api, tenant: Any, session: Any) -> None:
    api.delete(f"/waha/sessions/{session['id']}")
    assert audit.latest(tenant.id, "session.delete").target_id == session["id"]


# ---- QR, pairing code, screen ---------------------------------------------------------------------------------


def test_qr_answers_base64_png(api: Api, session: Any) -> None:
    response = api.get(f"/waha/sessions/{session['id']}/qr")
    assert response.status_code == 200
    body = response.get_json()
    assert body["mimetype"] == "image/png"
    assert base64.b64decode(body["data"]).startswith(PNG_MAGIC)
    assert body["expiresIn"] is None or body["expiresIn"] > 0


def test_qr_as_image_answers_png_bytes(api: Api, session: Any) -> None:
    response = api.get(f"/waha/sessions/{session['id']}/qr?format=image")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.get_data().startswith(PNG_MAGIC)
    assert response.headers["Cache-Control"] == "no-store"


def test_qr_of_working_session_is_409(api: Api, working_session: Any) -> None:
    response = api.get(f"/waha/sessions/{working_session['id']}/qr")
    assert response.status_code == 409
    assert _error(response)["code"] == "session_not_ready"
    assert _error(response)["details"]["status"] == "WORKING"


def test_qr_with_unknown_format_is_400(api: Api, session: Any) -> None:
    response = api.get(f"/waha/sessions/{session['id']}/qr?format=svg")
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "format"


def test_pairing_code_answers_code(api: Api, session: Any) -> None:
    response = api.post(f"/waha/sessions/{session['id']}/pairing-code", json={"phoneNumber": "+491701234567"})
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["code"]) >= 8


def test_pairing_code_with_invalid_phone_is_400(api: Api, session: Any) -> None:
    response = api.post(f"/waha/sessions/{session['id']}/pairing-code", json={"phoneNumber": "12345"})
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "phoneNumber"


def test_pairing_code_of_working_session_is_409(api: Api, working_session: Any) -> None:
    response = api.post(f"/waha/sessions/{working_session['id']}/pairing-code", json={"phoneNumber": "+491701234567"})
    assert response.status_code == 409
    assert _error(response)["code"] == "session_not_ready"


def test_pairing_code_is_audited(api: Api, tenant: Any, session: Any) -> None:
    api.post(f"/waha/sessions/{session['id']}/pairing-code", json={"phoneNumber": "+491701234567"})
    assert audit.latest(tenant.id, "session.pairing_code").target_id == session["id"]


# GOWS (the simulator's engine) shows a screen only while the QR is up, like the real engine.
def test_screen_answers_base64_image(api: Api, session: Any) -> None:
    response = api.get(f"/waha/sessions/{session['id']}/screen")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["mimetype"].startswith("image/")
    assert base64.b64decode(body["data"])


def test_screen_as_image_answers_bytes(api: Api, session: Any) -> None:
    response = api.get(f"/waha/sessions/{session['id']}/screen?format=image")
    assert response.status_code == 200
    assert response.mimetype.startswith("image/")
    assert response.get_data()


def test_screen_of_stopped_session_is_409(api: Api, session: Any) -> None:
    api.post(f"/waha/sessions/{session['id']}/stop")
    response = api.get(f"/waha/sessions/{session['id']}/screen")
    assert response.status_code == 409
    assert _error(response)["code"] == "session_not_ready"


def test_screen_of_working_gows_session_is_409(api: Api, working_session: Any) -> None:
    response = api.get(f"/waha/sessions/{working_session['id']}/screen")
    assert response.status_code == 409
    assert _error(response)["code"] == "session_not_ready"


# ---- linking a phone: one permission for QR, screen while scanning and pairing code ----------------------------


@pytest.mark.parametrize("path", ["/qr", "/qr?format=image", "/screen", "/screen?format=image"])
def test_read_only_token_cannot_see_the_qr_code(api: Api, tenant: Any, session: Any, path: str) -> None:
    reader = api.as_(make_token(tenant, ["sessions:read"], name="reader"))
    response = reader.get(f"/waha/sessions/{session['id']}{path}")
    assert response.status_code == 403
    assert _error(response)["code"] == "forbidden"
    assert _error(response)["details"]["required"] == "sessions:write"


def test_read_only_token_cannot_request_a_pairing_code(api: Api, tenant: Any, session: Any) -> None:
    reader = api.as_(make_token(tenant, ["sessions:read"], name="reader"))
    response = reader.post(f"/waha/sessions/{session['id']}/pairing-code", json={"phoneNumber": "+491701234567"})
    assert response.status_code == 403
    assert _error(response)["details"]["required"] == "sessions:write"


def test_linking_token_gets_qr_code_and_pairing_code(api: Api, tenant: Any, session: Any) -> None:
    linker = api.as_(make_token(tenant, ["sessions:write"], name="linker"))
    assert linker.get(f"/waha/sessions/{session['id']}/qr").status_code == 200
    assert (
        linker.post(f"/waha/sessions/{session['id']}/pairing-code", json={"phoneNumber": "+491701234567"}).status_code
        == 200
    )


def test_read_only_token_sees_the_screen_of_a_working_session(
    api: Api, tenant: Any, working_session: Any, sim: Any
) -> None:
    reader = api.as_(make_token(tenant, ["sessions:read"], name="reader"))
    response = reader.get(f"/waha/sessions/{working_session['id']}/screen")
    assert response.status_code in (200, 409)  # GOWS shows no screen once linked; never a 403
    assert response.status_code != 403
