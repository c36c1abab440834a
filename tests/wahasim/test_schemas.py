"""Answers the portal relies on, validated against openapi.json.

The document is relaxed where CONTRACT.md section 14 says it is wrong (see conftest._relaxed):
`nullable`, SessionInfo.me/presence/config, WAHAEnvironment.browser, webhook event names.
"""

from __future__ import annotations

import pytest
import requests

from tests.helpers import load_fixture

TEXT = {"session": "default", "chatId": "4915112345678@c.us", "text": "Hallo"}
CONFIG = load_fixture("session.create.request.json")["config"]


def test_session_list_matches_schema(api, schemas):
    api.create("a", start=True, config=CONFIG)
    api.create("b", start=False)
    api.working("c")
    body = api("GET", "/api/sessions", params={"all": "true"}).json()
    assert len(body) == 3
    schemas.validate(body, schemas.response("/api/sessions", "get", "200"))


def test_session_get_matches_schema(api, schemas):
    api.working("default", config=CONFIG)
    schemas.validate(
        api("GET", "/api/sessions/default").json(), schemas.response("/api/sessions/{session}", "get", "200")
    )


def test_session_create_matches_schema(api, schemas):
    body = api.create("default", start=True, config=CONFIG).json()
    schemas.validate(body, schemas.response("/api/sessions", "post", "201"))
    schemas.validate(body, schemas.component("SessionInfo"))


def test_session_create_matches_fixture_keys(api):
    fixture = load_fixture("session.create.response.json")
    body = api.create("default", start=True, config=CONFIG).json()
    assert set(fixture) <= set(body)
    assert body["config"] == CONFIG


@pytest.mark.parametrize("path", ["start", "stop", "restart", "logout"])
def test_session_actions_match_schema(api, schemas, path):
    api.create("default", start=False)
    body = api("POST", f"/api/sessions/default/{path}").json()
    schemas.validate(body, schemas.response("/api/sessions/{session}/start", "post", "201"))


@pytest.mark.parametrize("engine", ["GOWS", "NOWEB", "WEBJS"])
def test_send_text_matches_relaxed_schema_and_fixture(make_api, schemas, engine):
    api = make_api(engine=engine)
    api.working("default")
    body = api("POST", "/api/sendText", json=TEXT).json()
    schemas.validate(body, schemas.send_answer())
    fixture = load_fixture(f"send-text.response.{engine.lower()}.json")
    assert list(body) == list(fixture)
    if engine == "NOWEB":
        assert list(body["key"]) == list(fixture["key"])
    if engine == "WEBJS":
        assert list(body["id"]) == list(fixture["id"])


def test_qr_json_matches_schema(api, schemas):
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    image = api("GET", "/api/default/auth/qr", headers={"Accept": "application/json"}).json()
    raw = api("GET", "/api/default/auth/qr", params={"format": "raw"}).json()
    schema = schemas.response("/api/{session}/auth/qr", "get", "200")
    schemas.validate(image, schema)
    schemas.validate(raw, schema)
    schemas.validate(image, schemas.component("Base64File"))
    schemas.validate(raw, schemas.component("QRCodeValue"))


def test_request_code_matches_fixture_shape(api, schemas):
    # The document declares no body for request-code; the fixture shows {"code": "XXXX-XXXX"}.
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    body = api("POST", "/api/default/auth/request-code", json={"phoneNumber": "491701234567"}).json()
    schemas.validate(
        body,
        {
            "type": "object",
            "required": ["code"],
            "additionalProperties": False,
            "properties": {"code": {"type": "string", "pattern": "^[A-Z0-9]{4}-[A-Z0-9]{4}$"}},
        },
    )


def test_me_matches_schema(api, schemas):
    api.working("default")
    schemas.validate(
        api("GET", "/api/sessions/default/me").json(), schemas.response("/api/sessions/{session}/me", "get", "200")
    )


@pytest.mark.parametrize("path", ["/api/server/version", "/api/version"])
@pytest.mark.parametrize("engine", ["GOWS", "WEBJS"])
def test_version_matches_schema(make_api, schemas, path, engine):
    api = make_api(engine=engine)
    body = api("GET", path).json()
    schemas.validate(body, schemas.response(path, "get", "200"))
    assert list(body) == list(load_fixture("misc.responses.json")["GET /api/server/version"]["body"])


def test_server_status_matches_schema(api, schemas):
    schemas.validate(api("GET", "/api/server/status").json(), schemas.response("/api/server/status", "get", "200"))


def test_health_matches_schema(api, schemas):
    response = api("GET", "/health")
    assert response.status_code == 200
    schemas.validate(response.json(), schemas.response("/health", "get", "200"))
    assert response.json()["status"] == "ok"


def test_ping_matches_schema(api, schemas):
    schemas.validate(api("GET", "/ping").json(), schemas.response("/ping", "get", "200"))


@pytest.mark.parametrize("phone", ["4915112345678", "4900000000000"])
def test_check_exists_matches_schema_and_fixture(api, schemas, phone):
    api.working("default")
    body = api("GET", "/api/contacts/check-exists", params={"phone": phone, "session": "default"}).json()
    schemas.validate(body, schemas.response("/api/contacts/check-exists", "get", "200"))
    fixture = load_fixture("misc.responses.json")[f"GET /api/contacts/check-exists?phone={phone}&session=default"]
    assert body == fixture["body"]


ERRORS = [
    ("401 missing or wrong X-Api-Key", "GET", "/api/sessions", None, False),
    (
        "404 GET/PUT/start/logout/restart of a session that does not exist (multi-session builds)",
        "GET",
        "/api/sessions/ghost",
        None,
        True,
    ),
    ("422 create a session that already exists", "POST", "/api/sessions", {"name": "default"}, True),
    (
        "422 send/check-exists/QR while session exists but is not in the required status "
        "(after WAHA waits up to ~10 s)",
        "POST",
        "/api/sendText",
        TEXT,
        True,
    ),
    (
        "422 send to a session name that does not exist (multi-session builds, after ~5 s wait)",
        "POST",
        "/api/sendText",
        dict(TEXT, session="tenant_9"),
        True,
    ),
    (
        "422 body without 'session' on /api/send* endpoints",
        "POST",
        "/api/sendText",
        {"chatId": "4915112345678@c.us", "text": "x"},
        True,
    ),
    ("400 bad session name on create", "POST", "/api/sessions", {"name": "bad name"}, True),
    ("404 unknown route", "GET", "/api/nope", None, True),
]


@pytest.mark.parametrize("case, method, path, body, with_key", ERRORS, ids=[e[0][:40] for e in ERRORS])
def test_error_bodies_match_fixture_shapes(api, case, method, path, body, with_key):
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    headers = api.server.headers if with_key else {}
    response = requests.request(method, api.server.url + path, json=body, headers=headers, timeout=5)
    expected = load_fixture("errors.json")[case]
    assert response.status_code == expected["status"]
    assert response.json() == expected["body"]
