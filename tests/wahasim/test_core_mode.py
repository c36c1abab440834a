"""core_single_session: the Core image before 2026.6.1 (CONTRACT 1)."""

from __future__ import annotations

import pytest

from tests.helpers import load_fixture

ERRORS = load_fixture("errors.json")
FILE = {"mimetype": "image/png", "url": "https://files.example.com/x.png"}


@pytest.fixture
def core(make_api):
    return make_api(core_single_session=True)


def test_other_session_name_answers_422_only_default(core):
    response = core.create("tenant_7", start=True)
    assert response.status_code == 422
    assert response.json() == ERRORS["422 Core image (< 2026.6.1): any session name other than 'default'"]["body"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/sessions/tenant_7"),
        ("POST", "/api/sessions/tenant_7/start"),
        ("DELETE", "/api/sessions/tenant_7"),
        ("GET", "/api/sessions/tenant_7/me"),
    ],
)
def test_every_lookup_of_other_name_answers_422(core, method, path):
    assert core(method, path).status_code == 422


def test_send_to_other_name_answers_422_only_default(core):
    response = core("POST", "/api/sendText", json={"session": "tenant_7", "chatId": "1@c.us", "text": "x"})
    assert response.status_code == 422
    assert response.json()["message"].startswith("WAHA Core support only 'default' session.")


def test_create_without_name_answers_422(core):
    response = core("POST", "/api/sessions", json={"start": False})
    assert response.status_code == 422
    assert "WAHA Core support only 'default' session" in response.json()["message"]


def test_default_session_works(core):
    core.working("default")
    response = core("POST", "/api/sendText", json={"session": "default", "chatId": "1@c.us", "text": "x"})
    assert response.status_code == 201


def test_start_of_running_default_answers_422_already_started(core):
    core.create("default", start=True)
    response = core("POST", "/api/sessions/default/start")
    assert response.status_code == 422
    assert response.json() == ERRORS["422 Core image (< 2026.6.1): start while 'default' already running"]["body"]


@pytest.mark.parametrize("path", ["/api/sendImage", "/api/sendFile", "/api/sendVoice"])
def test_media_sends_answer_422_plus_only(core, path):
    core.working("default")
    response = core("POST", path, json={"session": "default", "chatId": "1@c.us", "file": FILE, "convert": False})
    assert response.status_code == 422
    assert (
        response.json() == ERRORS["422 Core image (< 2026.6.1): media sending (sendImage/sendFile/sendVoice)"]["body"]
    )


def test_send_video_answers_501_on_2025_builds(make_api):
    api = make_api(core_single_session=True, version="2025.12.3")
    api.working("default")
    response = api("POST", "/api/sendVideo", json={"session": "default", "chatId": "1@c.us", "file": FILE})
    assert response.status_code == 501
    assert response.json()["message"].startswith("The method is not implemented by 'GOWS' engine")


def test_send_video_answers_422_on_2024_builds(make_api):
    api = make_api(core_single_session=True, version="2024.10.8")
    api.working("default")
    response = api("POST", "/api/sendVideo", json={"session": "default", "chatId": "1@c.us", "file": FILE})
    assert response.status_code == 422


def test_health_answers_422_plus_only(make_api):
    api = make_api(core_single_session=True, engine="WEBJS")
    response = api("GET", "/health")
    assert response.status_code == 422
    assert response.json() == load_fixture("misc.responses.json")["GET /health (Core image before 2026.6.1)"]["body"]


def test_version_reports_core_tier(core):
    assert core("GET", "/api/server/version").json()["tier"] == "CORE"


def test_multi_session_mode_reports_plus_tier(api):
    assert api("GET", "/api/server/version").json()["tier"] == "PLUS"


def test_tier_can_be_set_explicitly(make_api):
    assert make_api(tier="CORE")("GET", "/api/server/version").json()["tier"] == "CORE"
