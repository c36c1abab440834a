"""Session endpoints and the state machine (CONTRACT 5)."""

from __future__ import annotations

import re

import pytest

from tests.helpers import wait_for as wait_until


def statuses(server, name):
    return [e["payload"]["status"] for e in server.events() if e["event"] == "session.status" and e["session"] == name]


def test_create_with_start_answers_201_starting(api):
    response = api.create("default", start=True)
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["status"], body["me"]) == ("default", "STARTING", None)
    assert body["engine"]["engine"] == "GOWS"


def test_create_without_start_leaves_session_stopped(api):
    response = api("POST", "/api/sessions", json={"name": "quiet"})
    assert response.status_code == 201
    assert response.json()["status"] == "STOPPED"


def test_create_without_start_starts_when_start_default_is_true(make_api):
    api = make_api(start_default=True)
    response = api("POST", "/api/sessions", json={"name": "eager"})
    assert response.json()["status"] == "STARTING"


def test_create_without_name_generates_session_ulid(api):
    response = api("POST", "/api/sessions", json={"start": False})
    assert response.status_code == 201
    assert re.fullmatch(r"session_[0-9a-hjkmnp-tv-z]{26}", response.json()["name"])


def test_create_existing_answers_422_use_put(api):
    api.create("dup", start=False)
    response = api.create("dup", start=False)
    assert response.status_code == 422
    assert response.json() == {
        "message": "Session 'dup' already exists. Use PUT to update it.",
        "error": "Unprocessable Entity",
        "statusCode": 422,
    }


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"name": "bad name!"},
            "Session name can only contain alphanumeric characters, hyphens, and underscores "
            "(a-z, A-Z, 0-9, -, _) or be empty",
        ),
        ({"name": "x" * 55}, "name must be shorter than or equal to 54 characters"),
        ({"name": "m", "config": {"metadata": {"n": 1}}}, "config.metadata accepts string key-value pairs only"),
        (
            {"name": "u", "config": {"webhooks": [{"url": "not a url", "events": ["message"]}]}},
            "config.webhooks.0.url must be a URL address",
        ),
        ({"name": "s", "start": "yes"}, "start must be a boolean value"),
    ],
)
def test_create_invalid_body_answers_400_with_message_array(api, body, message):
    response = api("POST", "/api/sessions", json=body)
    assert response.status_code == 400
    data = response.json()
    assert data["error"] == "Bad Request" and data["statusCode"] == 400
    assert message in data["message"]


def test_create_unknown_event_name_answers_400(api):
    body = {"name": "e", "config": {"webhooks": [{"url": "http://app:5000/x", "events": ["message", "nope"]}]}}
    response = api("POST", "/api/sessions", json=body)
    assert response.status_code == 400
    assert response.json()["message"][0].startswith("each value in config.webhooks.0.events must be one of")


def test_create_accepts_url_without_tld_and_star_events(api):
    body = {"name": "t", "config": {"webhooks": [{"url": "http://app:5000/webhooks/waha", "events": ["*"]}]}}
    assert api("POST", "/api/sessions", json=body).status_code == 201


def test_create_strips_unknown_fields(api):
    body = {
        "name": "strip",
        "bogus": 1,
        "config": {
            "metadata": {"a": "b"},
            "weird": True,
            "webhooks": [{"url": "http://x/y", "events": ["message"], "extra": 1}],
        },
    }
    api("POST", "/api/sessions", json=body)
    config = api("GET", "/api/sessions/strip").json()["config"]
    assert config == {"metadata": {"a": "b"}, "webhooks": [{"url": "http://x/y", "events": ["message"]}]}


def test_list_omits_stopped_sessions_by_default(api):
    api.create("running", start=True)
    api.create("stopped", start=False)
    names = [s["name"] for s in api("GET", "/api/sessions").json()]
    assert names == ["running"]


@pytest.mark.parametrize("value", ["true", "True", "1"])
def test_list_all_includes_stopped_sessions(api, value):
    api.create("running", start=True)
    api.create("stopped", start=False)
    names = {s["name"] for s in api("GET", "/api/sessions", params={"all": value}).json()}
    assert names == {"running", "stopped"}


@pytest.mark.parametrize("value", ["false", "False", "0"])
def test_list_all_false_omits_stopped_sessions(api, value):
    api.create("stopped", start=False)
    assert api("GET", "/api/sessions", params={"all": value}).json() == []


def test_list_all_with_non_boolean_answers_400(api):
    response = api("GET", "/api/sessions", params={"all": "maybe"})
    assert response.status_code == 400
    assert response.json()["message"] == ["all must be a boolean value"]


def test_list_items_carry_no_engine_but_get_does(api):
    api.create("one", start=True)
    assert "engine" not in api("GET", "/api/sessions").json()[0]
    assert api("GET", "/api/sessions/one").json()["engine"]["engine"] == "GOWS"


def test_get_unknown_session_answers_404(api):
    response = api("GET", "/api/sessions/ghost")
    assert response.status_code == 404
    assert response.json() == {"message": "Session not found", "error": "Not Found", "statusCode": 404}


@pytest.mark.parametrize(
    "method, path",
    [
        ("PUT", "/api/sessions/ghost"),
        ("POST", "/api/sessions/ghost/start"),
        ("POST", "/api/sessions/ghost/stop"),
        ("POST", "/api/sessions/ghost/logout"),
        ("POST", "/api/sessions/ghost/restart"),
    ],
)
def test_actions_on_unknown_session_answer_404(api, method, path):
    response = api(method, path, json={})
    assert response.status_code == 404
    assert response.json()["message"] == "Session not found"


def test_put_replaces_config_and_answers_200(api):
    api.create("p", start=False, config={"metadata": {"a": "1"}, "debug": True})
    response = api("PUT", "/api/sessions/p", json={"config": {"metadata": {"b": "2"}}})
    assert response.status_code == 200
    assert response.json()["config"] == {"metadata": {"b": "2"}}


def test_put_on_running_session_restarts_it(api, server):
    api.working("p")
    api("PUT", "/api/sessions/p", json={"config": {"metadata": {"b": "2"}}})
    assert statuses(server, "p")[-2:] == ["STOPPED", "STARTING"]
    api.wait_status("p", "WORKING")


def test_put_on_stopped_session_keeps_it_stopped(api):
    api.create("p", start=False)
    assert api("PUT", "/api/sessions/p", json={"config": None}).json()["status"] == "STOPPED"


def test_delete_answers_200_with_empty_body(api):
    api.create("gone", start=True)
    response = api("DELETE", "/api/sessions/gone")
    assert (response.status_code, response.content) == (200, b"")
    assert api("GET", "/api/sessions/gone").status_code == 404


def test_delete_is_idempotent(api):
    response = api("DELETE", "/api/sessions/never")
    assert (response.status_code, response.content) == (200, b"")


def test_start_stopped_session_answers_201_starting(api):
    api.create("s", start=False)
    response = api("POST", "/api/sessions/s/start")
    assert response.status_code == 201
    assert response.json()["status"] == "STARTING"


def test_start_running_session_is_a_no_op(api, server):
    api.working("s")
    response = api("POST", "/api/sessions/s/start")
    assert (response.status_code, response.json()["status"]) == (201, "WORKING")


def test_stop_answers_201_stopped_and_is_idempotent(api):
    api.create("s", start=True)
    first = api("POST", "/api/sessions/s/stop")
    second = api("POST", "/api/sessions/s/stop")
    assert (first.status_code, first.json()["status"]) == (201, "STOPPED")
    assert (second.status_code, second.json()["status"]) == (201, "STOPPED")


def test_start_reaches_scan_qr_code_after_starting(api, server):
    api.create("q", start=True)
    api.wait_status("q", "SCAN_QR_CODE")
    assert statuses(server, "q") == ["STARTING", "SCAN_QR_CODE"]


def test_scan_makes_session_working_with_me(api, server):
    api.working("w")
    body = api("GET", "/api/sessions/w").json()
    assert body["status"] == "WORKING"
    assert body["me"]["id"] == "491701234567@c.us"
    assert isinstance(body["me"]["pushName"], str)
    assert body["presence"] == "online"


def test_working_is_emitted_once(api, server):
    api.working("w")
    with pytest.raises(Exception):
        server.scan("w")
    assert statuses(server, "w").count("WORKING") == 1


def test_qr_rotates_with_new_value_and_reemits_scan_qr_code(make_api):
    api = make_api(qr_first_seconds=0.15, qr_next_seconds=0.15, qr_max=5)
    api.create("r", start=True)
    api.wait_status("r", "SCAN_QR_CODE")
    first = api("GET", "/api/r/auth/qr", params={"format": "raw"}).json()["value"]
    wait_until(lambda: api.server.session("r")["qr"]["count"] == 2)
    second = api("GET", "/api/r/auth/qr", params={"format": "raw"}).json()["value"]
    assert first != second
    assert statuses(api.server, "r") == ["STARTING", "SCAN_QR_CODE", "SCAN_QR_CODE"]


def test_session_fails_after_qr_max_codes(make_api):
    api = make_api(qr_first_seconds=0.05, qr_next_seconds=0.05, qr_max=3)
    api.create("f", start=True)
    api.wait_status("f", "FAILED")
    assert statuses(api.server, "f") == ["STARTING", "SCAN_QR_CODE", "SCAN_QR_CODE", "SCAN_QR_CODE", "FAILED"]


def test_status_history_keeps_last_three_newest_last(api, server):
    api.working("h")
    event = [e for e in server.events() if e["event"] == "session.status"][-1]
    history = event["payload"]["statuses"]
    assert [h["status"] for h in history] == ["STARTING", "SCAN_QR_CODE", "WORKING"]
    assert history[0]["timestamp"] <= history[1]["timestamp"] <= history[2]["timestamp"]
    assert event["payload"]["name"] == "h"


def test_restart_of_paired_session_goes_straight_to_working(api, server):
    api.working("r")
    response = api("POST", "/api/sessions/r/restart")
    assert (response.status_code, response.json()["status"]) == (201, "STARTING")
    api.wait_status("r", "WORKING")
    assert statuses(server, "r")[-3:] == ["STOPPED", "STARTING", "WORKING"]


def test_stop_then_start_keeps_auth(api):
    api.working("k")
    api("POST", "/api/sessions/k/stop")
    api("POST", "/api/sessions/k/start")
    api.wait_status("k", "WORKING")


def test_logout_of_running_session_shows_new_qr(api, server):
    api.working("l")
    response = api("POST", "/api/sessions/l/logout")
    assert response.status_code == 201
    api.wait_status("l", "SCAN_QR_CODE")
    assert api("GET", "/api/sessions/l").json()["me"] is None


def test_logout_of_stopped_session_keeps_it_stopped_and_forgets_auth(api):
    api.working("l")
    api("POST", "/api/sessions/l/stop")
    assert api("POST", "/api/sessions/l/logout").json()["status"] == "STOPPED"
    api("POST", "/api/sessions/l/start")
    api.wait_status("l", "SCAN_QR_CODE")


def test_fail_on_demand_sets_failed(api, server):
    api.create("x", start=True)
    server.fail("x")
    assert api("GET", "/api/sessions/x").json()["status"] == "FAILED"


def test_me_is_empty_body_before_login(api):
    api.create("m", start=True)
    api.wait_status("m", "SCAN_QR_CODE")
    response = api("GET", "/api/sessions/m/me")
    assert (response.status_code, response.content) == (200, b"")


def test_me_returns_account_when_working(api):
    api.working("m")
    assert api("GET", "/api/sessions/m/me").json() == {"id": "491701234567@c.us", "pushName": "WAHA Simulator"}


def test_me_of_stopped_session_answers_404(api):
    api.create("m", start=False)
    response = api("GET", "/api/sessions/m/me")
    assert response.status_code == 404
    assert response.json()["message"] == (
        "We didn't find a session with name 'm'.\nPlease start it first by using POST /api/sessions/m/start request"
    )


def test_deprecated_start_creates_and_starts(api):
    response = api("POST", "/api/sessions/start", json={"name": "old"})
    assert (response.status_code, response.json()["status"]) == (201, "STARTING")


def test_deprecated_start_of_running_session_answers_422(api):
    api.create("old", start=True)
    response = api("POST", "/api/sessions/start", json={"name": "old"})
    assert response.status_code == 422
    assert response.json()["message"] == "Session 'old' is already started."


def test_deprecated_logout_deletes_session(api):
    api.create("old", start=True)
    response = api("POST", "/api/sessions/logout", json={"name": "old"})
    assert (response.status_code, response.content) == (201, b"")
    assert api("GET", "/api/sessions/old").status_code == 404


def test_unknown_route_answers_nest_404(api):
    response = api("GET", "/api/x")
    assert response.status_code == 404
    assert response.json() == {"message": "Cannot GET /api/x", "error": "Not Found", "statusCode": 404}


def test_wrong_method_answers_nest_404(api):
    response = api("PATCH", "/api/sessions/default")
    assert response.json() == {"message": "Cannot PATCH /api/sessions/default", "error": "Not Found", "statusCode": 404}


def test_malformed_json_answers_400(api):
    response = api("POST", "/api/sessions", data=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_list_with_expand_apps_includes_apps(api):
    api.create("a", start=True)
    assert api("GET", "/api/sessions", params={"expand": "apps"}).json()[0]["apps"] is None
    assert "apps" not in api("GET", "/api/sessions").json()[0]
