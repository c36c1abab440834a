"""API key rules (CONTRACT 3)."""

from __future__ import annotations

import hashlib

import pytest
import requests

UNAUTHORIZED = {"message": "Unauthorized", "statusCode": 401}


@pytest.mark.parametrize("path", ["/api/sessions", "/api/server/version", "/health", "/api/does-not-exist"])
def test_request_without_key_answers_401(server, path):
    response = requests.get(server.url + path, timeout=5)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_request_with_wrong_key_answers_same_401(server):
    response = requests.get(server.url + "/api/sessions", headers={"X-Api-Key": "nope"}, timeout=5)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize("header", ["X-Api-Key", "x-api-key", "X-API-KEY"])
def test_key_header_is_accepted_in_any_case(server, header):
    response = requests.get(server.url + "/api/sessions", headers={header: server.api_key}, timeout=5)
    assert response.status_code == 200


def test_key_query_parameter_is_accepted(server):
    response = requests.get(server.url + "/api/sessions", params={"x-api-key": server.api_key}, timeout=5)
    assert response.status_code == 200


def test_wrong_header_wins_over_right_query_parameter(server):
    response = requests.get(
        server.url + "/api/sessions", params={"x-api-key": server.api_key}, headers={"X-Api-Key": "wrong"}, timeout=5
    )
    assert response.status_code == 401


def test_ping_needs_no_key(server):
    response = requests.get(server.url + "/ping", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"message": "pong"}


def test_sha512_configured_key_accepts_the_plain_key(make_server):
    server = make_server(api_key="sha512:" + hashlib.sha512(b"plain-secret").hexdigest())
    ok = requests.get(server.url + "/api/sessions", headers={"X-Api-Key": "plain-secret"}, timeout=5)
    bad = requests.get(server.url + "/api/sessions", headers={"X-Api-Key": "other"}, timeout=5)
    assert (ok.status_code, bad.status_code) == (200, 401)


def test_control_surface_needs_no_key(server):
    assert requests.get(server.url + "/_sim/state", timeout=5).status_code == 200
