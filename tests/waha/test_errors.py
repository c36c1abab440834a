"""Every WAHA error body (both shapes) reaches the caller as its typed error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portal.waha import errors

# Read at import time because the rows parametrize the tests.
ERROR_FIXTURES = json.loads(
    (Path(__file__).resolve().parent.parent / "fixtures" / "waha" / "errors.json").read_text(encoding="utf-8")
)

# The class each row of errors.json must map to (CONTRACT section 4).
EXPECTED_CLASS = {
    "401 missing or wrong X-Api-Key": errors.WahaUnauthorized,
    "403 scoped key used outside its session/actions (2026.1.4+)": errors.WahaUnauthorized,
    "404 GET/PUT/start/logout/restart of a session that does not exist (multi-session builds)": errors.WahaNotFound,
    "404 endpoints that look the session up directly (e.g. /api/screenshot, /api/sessions/{s}/me) "
    "when it is not running": errors.WahaNotFound,
    "422 create a session that already exists": errors.WahaAlreadyExists,
    "422 send/check-exists/QR while session exists but is not in the required status "
    "(after WAHA waits up to ~10 s)": errors.WahaSessionNotReady,
    "422 send to a session that is stopped (not running)": errors.WahaSessionNotReady,
    "422 send to a session name that does not exist (multi-session builds, after ~5 s wait)": errors.WahaNotFound,
    "422 body without 'session' on /api/send* endpoints": errors.WahaError,
    "422 GET QR when session is WORKING": errors.WahaSessionNotReady,
    "422 Core image (< 2026.6.1): any session name other than 'default'": errors.WahaNotSupported,
    "422 Core image (< 2026.6.1): start while 'default' already running": errors.WahaAlreadyStarted,
    "422 Core image (< 2026.6.1): media sending (sendImage/sendFile/sendVoice)": errors.WahaNotSupported,
    "400 DTO validation failure (session create/update, query params)": errors.WahaValidationError,
    "400 bad session name on create": errors.WahaValidationError,
    "404 unknown route": errors.WahaNotFound,
    "500 unexpected engine error": errors.WahaError,
}

# Rows of CONTRACT section 4 that errors.json does not carry.
EXTRA_CASES = {
    "404 missing media file": (
        404,
        {"error": {"code": 404, "key": "FILE_NOT_FOUND", "message": "File not found", "details": "gone"}},
        errors.WahaNotFound,
    ),
    "501 engine does not implement the method": (
        501,
        {"message": "The method is not implemented by 'GOWS' engine.", "error": "Not Implemented", "statusCode": 501},
        errors.WahaNotImplemented,
    ),
    "422 engine does not implement the method (2024 images)": (
        422,
        {
            "message": "The method is not implemented by 'NOWEB' engine.",
            "error": "Unprocessable Entity",
            "statusCode": 422,
        },
        errors.WahaNotImplemented,
    ),
    "502 from a proxy": (502, {"message": "Bad Gateway"}, errors.WahaUnavailable),
    "503 unavailable": (503, {"message": "Service Unavailable"}, errors.WahaUnavailable),
    "504 gateway timeout": (504, {"message": "Gateway Timeout"}, errors.WahaUnavailable),
}

ALL_CASES = {name: (row["status"], row["body"], EXPECTED_CLASS[name]) for name, row in ERROR_FIXTURES.items()}
ALL_CASES.update(EXTRA_CASES)


@pytest.fixture
def no_retry_client(make_client):
    return make_client(retry_attempts=0, breaker_fail_max=100)


def test_error_table_covers_every_fixture_row():
    assert set(EXPECTED_CLASS) == set(ERROR_FIXTURES)


@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_error_body_raises_its_typed_error(waha, waha_url, no_retry_client, case):
    status, body, expected = ALL_CASES[case]
    waha.get(f"{waha_url}/api/sessions/default", status=status, json=body)

    with pytest.raises(errors.WahaError) as caught:
        no_retry_client.get_session("default")

    assert type(caught.value) is expected
    assert caught.value.status == status


@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_error_carries_a_readable_message_and_short_excerpt(case):
    status, body, _ = ALL_CASES[case]
    error = errors.from_response(status, json.dumps(body))
    assert error.message and "{" not in error.message
    assert 0 < len(error.body_excerpt) <= 300


def test_session_not_ready_exposes_status_and_expected(load_fixture):
    row = load_fixture("errors.json")["422 GET QR when session is WORKING"]
    error = errors.from_response(row["status"], json.dumps(row["body"]))
    assert (error.session_status, error.expected) == ("WORKING", ["SCAN_QR_CODE"])


def test_validation_error_lists_every_message(load_fixture):
    row = load_fixture("errors.json")["400 DTO validation failure (session create/update, query params)"]
    error = errors.from_response(row["status"], json.dumps(row["body"]))
    assert error.messages == [
        "config.webhooks.0.url must be a URL address",
        "config.metadata accepts string key-value pairs only",
    ]


def test_server_error_message_comes_from_the_exception(load_fixture):
    row = load_fixture("errors.json")["500 unexpected engine error"]
    assert errors.from_response(row["status"], json.dumps(row["body"])).message == "socket closed"


def test_non_json_error_body_still_maps_by_status():
    error = errors.from_response(502, "<html>bad gateway</html>")
    assert isinstance(error, errors.WahaUnavailable) and error.body_excerpt == "<html>bad gateway</html>"


def test_timeout_is_a_kind_of_unavailable():
    assert issubclass(errors.WahaTimeout, errors.WahaUnavailable)
