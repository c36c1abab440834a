"""Another tenant's session or message is a 404 on every tenant-owned route, and nothing happens to it."""

from __future__ import annotations

import io
from typing import Any

import pytest

from portal.api.openapi import ROUTES, ApiRoute
from tests.builders import wait_for_status
from tests.helpers import Api

OWNED = [r for r in ROUTES if "{session_id}" in r.path or "{message_id}" in r.path]
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63646060f80f"
    "0002870180eb47ba920000000049454e44ae426082"
)


@pytest.fixture
def foreign(other_api: Api, sim: Any, tenant: Any, other_tenant: Any) -> dict[str, Any]:
    """A WORKING session of globex with one sent message: what acme must not reach."""
    from portal.extensions import db

    created = other_api.post("/waha/sessions", json={"sessionName": "globex-line"}).get_json()
    wait_for_status(other_api, created["id"], "SCAN_QR_CODE")
    sim.scan(created["externalSessionId"])
    wait_for_status(other_api, created["id"], "WORKING")
    sent = other_api.post(f"/waha/sessions/{created['id']}/send", json={"to": "+491701234567", "text": "secret"})
    assert sent.status_code == 200, sent.get_json()
    db.session.expire_all()
    return {"session": created, "message": sent.get_json()}


def _request(route: ApiRoute, foreign: dict[str, Any]) -> dict[str, Any]:
    """A valid request for the route, so only ownership can refuse it."""
    if route.multipart:
        return {
            "data": {"file": (io.BytesIO(PNG), "p.png", "image/png"), "to": "+491701234567"},
            "content_type": "multipart/form-data",
        }
    if route.body is not None:
        return {"json": route.example or {}}
    return {}


@pytest.mark.parametrize("route", OWNED, ids=[r.endpoint for r in OWNED])
def test_other_tenants_id_is_404(api: Api, foreign: dict[str, Any], route: ApiRoute) -> None:
    path = (
        route.path.replace("{session_id}", foreign["session"]["id"])
        .replace("{message_id}", str(foreign["message"]["id"]))
        .replace("{chat_id}", foreign["message"]["chatId"])  # the chat the foreign send made
    )
    response = api.call(route.method, path, **_request(route, foreign))
    assert response.status_code == 404, response.get_json()
    expected = "session_not_found" if "{session_id}" in route.path else "message_not_found"
    assert response.get_json()["error"]["code"] == expected


@pytest.mark.parametrize("path", ["/waha/messages", "/waha/chats"])
def test_other_tenants_session_filter_is_404(api: Api, foreign: dict[str, Any], path: str) -> None:
    response = api.get(f"{path}?sessionId={foreign['session']['id']}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "session_not_found"


def test_other_tenants_chats_and_contacts_are_not_listed(api: Api, other_api: Api, foreign: dict[str, Any]) -> None:
    assert [c["chatId"] for c in other_api.get("/waha/chats").get_json()["data"]] == ["491701234567@c.us"]
    assert api.get("/waha/chats").get_json()["data"] == []
    assert api.get("/waha/contacts").get_json()["data"] == []


def test_cross_tenant_calls_leave_the_session_untouched(
    api: Api, other_api: Api, sim: Any, foreign: dict[str, Any]
) -> None:
    session_id = foreign["session"]["id"]
    for action in ("stop", "logout", "restart"):
        api.post(f"/waha/sessions/{session_id}/{action}")
    api.delete(f"/waha/sessions/{session_id}")
    api.post(f"/waha/sessions/{session_id}/send", json={"to": "+491701234567", "text": "intruder"})
    api.call("PATCH", f"/waha/sessions/{session_id}/chats/491701234567@c.us", json={"status": "resolved"})
    assert other_api.get(f"/waha/sessions/{session_id}").get_json()["status"] == "WORKING"
    assert [m["body"] for m in sim.sent_messages(foreign["session"]["externalSessionId"])] == ["secret"]
    assert [c["status"] for c in other_api.get("/waha/chats").get_json()["data"]] == ["open"]


def test_other_tenants_sessions_are_not_listed(api: Api, foreign: dict[str, Any]) -> None:
    assert api.get("/waha/sessions").get_json()["data"] == []
