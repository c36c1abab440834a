"""QR code, pairing code and screenshot (CONTRACT 6)."""

from __future__ import annotations

import base64
import re

import pytest
import segno

from . import png


@pytest.fixture
def scanning(api):
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    return api


def qr_value(api, name="default"):
    return api("GET", f"/api/{name}/auth/qr", params={"format": "raw"}).json()["value"]


def modules_in(image: bytes, scale: int = 4, border: int = 4) -> list[list[bool]]:
    """Sample the centre of every QR module in the PNG."""
    width, height, rows = png.read(image)
    count = width // scale - 2 * border
    half = scale // 2
    return [
        [rows[(border + r) * scale + half][(border + c) * scale + half] for c in range(count)] for r in range(count)
    ]


def test_qr_with_exact_json_accept_answers_base64_png(scanning):
    response = scanning("GET", "/api/default/auth/qr", headers={"Accept": "application/json"})
    assert response.status_code == 200
    body = response.json()
    assert body["mimetype"] == "image/png"
    assert base64.b64decode(body["data"])[:8] == png.SIGNATURE


@pytest.mark.parametrize("accept", ["application/json, */*", "*/*", "image/png", "text/html"])
def test_qr_with_other_accept_answers_raw_png(scanning, accept):
    response = scanning("GET", "/api/default/auth/qr", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.content[:8] == png.SIGNATURE


def test_qr_png_has_a_square_qr_size(scanning):
    width, height, _ = png.read(scanning("GET", "/api/default/auth/qr").content)
    assert width == height
    assert width >= 21 * 4  # at least a version-1 symbol at scale 4


def test_qr_png_encodes_the_current_raw_value(scanning):
    value = qr_value(scanning)
    image = scanning("GET", "/api/default/auth/qr").content
    expected = [[bool(m) for m in row] for row in segno.make(value, error="l", micro=False).matrix]
    assert modules_in(image) == expected


def test_qr_raw_answers_value_regardless_of_accept(scanning):
    response = scanning("GET", "/api/default/auth/qr", params={"format": "raw"}, headers={"Accept": "image/png"})
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["value"].startswith("2@")


def test_qr_when_working_answers_status_mismatch(api):
    api.working("default")
    response = api("GET", "/api/default/auth/qr")
    assert response.status_code == 422
    assert response.json() == {
        "error": "Session status is not as expected. Try again later or restart the session",
        "session": "default",
        "status": "WORKING",
        "expected": ["SCAN_QR_CODE"],
    }


def test_qr_of_unknown_session_answers_does_not_exist(api):
    response = api("GET", "/api/ghost/auth/qr")
    assert response.status_code == 422
    assert response.json() == {"error": 'Session "ghost" does not exist', "session": "ghost"}


def test_request_code_answers_201_with_code(scanning):
    response = scanning("POST", "/api/default/auth/request-code", json={"phoneNumber": "491701234567"})
    assert response.status_code == 201
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", response.json()["code"])


def test_request_code_when_working_answers_422(api):
    api.working("default")
    response = api("POST", "/api/default/auth/request-code", json={"phoneNumber": "491701234567"})
    assert response.status_code == 422
    assert response.json()["status"] == "WORKING"


def test_request_code_of_stopped_session_answers_404(api):
    api.create("default", start=False)
    response = api("POST", "/api/default/auth/request-code", json={"phoneNumber": "491701234567"})
    assert response.status_code == 404


def test_request_code_without_phone_answers_400(scanning):
    response = scanning("POST", "/api/default/auth/request-code", json={})
    assert response.status_code == 400
    assert response.json()["message"] == ["phoneNumber must be a string"]


def test_screenshot_on_gows_while_scanning_is_the_qr_labelled_jpeg(scanning):
    response = scanning("GET", "/api/screenshot", params={"session": "default"})
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.content[:8] == png.SIGNATURE


def test_screenshot_with_json_accept_answers_base64_labelled_jpeg(scanning):
    response = scanning("GET", "/api/screenshot", params={"session": "default"}, headers={"Accept": "application/json"})
    assert response.json()["mimetype"] == "image/jpeg"


def test_screenshot_on_gows_while_working_answers_422(api):
    api.working("default")
    assert api("GET", "/api/screenshot", params={"session": "default"}).status_code == 422


def test_screenshot_on_webjs_while_working_answers_an_image(make_api):
    api = make_api(engine="WEBJS")
    api.working("default")
    response = api("GET", "/api/screenshot", params={"session": "default"})
    assert response.status_code == 200
    assert response.content[:8] == png.SIGNATURE


def test_screenshot_of_stopped_session_answers_404(api):
    api.create("default", start=False)
    assert api("GET", "/api/screenshot", params={"session": "default"}).status_code == 404
