"""Retries happen only where repeating is safe, and the circuit breaker makes a failing WAHA fail fast."""

from __future__ import annotations

import json
import time

import pytest
import requests

from portal.waha import errors

UNAVAILABLE = {"message": "Service Unavailable", "statusCode": 503}


def sent_ids(waha) -> list[str]:
    return [json.loads(call.request.body)["id"] for call in waha.calls]


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [502, 503, 504])
def test_idempotent_call_is_retried_after_gateway_error(waha, waha_client, waha_url, status):
    waha.get(f"{waha_url}/api/sessions/s1", status=status, json=UNAVAILABLE)
    waha.get(f"{waha_url}/api/sessions/s1", json={"name": "s1"})

    assert waha_client.get_session("s1") == {"name": "s1"}
    assert len(waha.calls) == 2


@pytest.mark.parametrize("failure", [requests.ConnectionError("refused"), requests.ReadTimeout("slow")])
def test_idempotent_call_is_retried_after_transport_failure(waha, waha_client, waha_url, failure):
    waha.delete(f"{waha_url}/api/sessions/s1", body=failure)
    waha.delete(f"{waha_url}/api/sessions/s1", body="")

    waha_client.delete_session("s1")

    assert len(waha.calls) == 2


def test_retries_stop_after_retry_attempts(waha, make_client, waha_url):
    limited = make_client(retry_attempts=2, breaker_fail_max=100)
    waha.get(f"{waha_url}/api/server/version", status=503, json=UNAVAILABLE)

    with pytest.raises(errors.WahaUnavailable):
        limited.version()

    assert len(waha.calls) == 3


def test_retry_attempts_zero_tries_once(waha, make_client, waha_url):
    once = make_client(retry_attempts=0)
    waha.get(f"{waha_url}/api/server/version", status=503, json=UNAVAILABLE)

    with pytest.raises(errors.WahaUnavailable):
        once.version()

    assert len(waha.calls) == 1


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, {"statusCode": 500, "exception": {"message": "boom"}}, errors.WahaError),
        (404, {"message": "Session not found", "statusCode": 404}, errors.WahaNotFound),
        (401, {"message": "Unauthorized", "statusCode": 401}, errors.WahaUnauthorized),
    ],
)
def test_call_is_not_retried_after_answer_that_would_repeat(waha, waha_client, waha_url, status, body, error):
    waha.get(f"{waha_url}/api/sessions/s1", status=status, json=body)

    with pytest.raises(error):
        waha_client.get_session("s1")

    assert len(waha.calls) == 1


@pytest.mark.parametrize(
    "failure", [requests.ConnectionError("reset"), requests.ReadTimeout("slow")], ids=["connection", "timeout"]
)
def test_create_session_is_not_retried_after_transport_failure(waha, waha_client, waha_url, failure):
    waha.post(f"{waha_url}/api/sessions", body=failure)

    with pytest.raises(errors.WahaUnavailable):
        waha_client.create_session("s1", None)

    assert len(waha.calls) == 1


def test_create_session_is_not_retried_after_503(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/sessions", status=503, json=UNAVAILABLE)

    with pytest.raises(errors.WahaUnavailable):
        waha_client.create_session("s1", None)

    assert len(waha.calls) == 1


def test_create_session_read_timeout_raises_waha_timeout(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/sessions", body=requests.ReadTimeout("slow"))

    with pytest.raises(errors.WahaTimeout):
        waha_client.create_session("s1", None)


@pytest.mark.parametrize("method", ["logout_session", "request_pairing_code"])
def test_non_idempotent_session_call_is_not_retried(waha, waha_client, waha_url, method):
    path = "/api/sessions/s1/logout" if method == "logout_session" else "/api/s1/auth/request-code"
    waha.post(f"{waha_url}{path}", status=503, json=UNAVAILABLE)

    with pytest.raises(errors.WahaUnavailable):
        if method == "logout_session":
            waha_client.logout_session("s1")
        else:
            waha_client.request_pairing_code("s1", "491701234567")

    assert len(waha.calls) == 1


def test_send_with_message_id_is_retried_with_the_same_id(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/sendText", body=requests.ConnectionError("reset"))
    waha.post(f"{waha_url}/api/sendText", status=201, json={"id": "true_1@c.us_3EB0000000000000AAAA"})

    result = waha_client.send_text("s1", "1@c.us", "hi", message_id="3EB0000000000000AAAA")

    assert sent_ids(waha) == ["3EB0000000000000AAAA", "3EB0000000000000AAAA"]
    assert result.message_id == "true_1@c.us_3EB0000000000000AAAA"


def test_send_without_message_id_retries_with_one_generated_id(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/sendText", status=503, json=UNAVAILABLE)
    waha.post(f"{waha_url}/api/sendText", status=201, json={})

    waha_client.send_text("s1", "1@c.us", "hi")

    first, second = sent_ids(waha)
    assert first == second


IMAGE = {"mimetype": "image/png", "url": "https://files.example.com/a.png"}


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 503, "json": UNAVAILABLE},
        {"body": requests.ConnectionError("connection reset by peer")},
        {"body": requests.ReadTimeout("slow")},
    ],
    ids=["503", "reset", "read-timeout"],
)
def test_media_send_is_not_retried_once_waha_may_have_received_it(waha, waha_client, waha_url, failure):
    # Only sendText's schema has the pre-generated `id` WAHA dedupes on; a media retry could deliver twice.
    waha.post(f"{waha_url}/api/sendImage", **failure)

    with pytest.raises(errors.WahaUnavailable):
        waha_client.send_image("s1", "1@c.us", IMAGE)

    assert len(waha.calls) == 1


def test_media_send_is_retried_when_no_connection_could_be_opened(waha, waha_client, waha_url):
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    refused = requests.ConnectionError(MaxRetryError(None, waha_url, NewConnectionError(None, "refused")))
    waha.post(f"{waha_url}/api/sendImage", body=refused)
    waha.post(f"{waha_url}/api/sendImage", status=201, json={"id": "true_1@c.us_3EB0000000000000BBBB"})

    result = waha_client.send_image("s1", "1@c.us", IMAGE, message_id="3EB0000000000000BBBB")

    assert len(waha.calls) == 2
    assert result.message_id == "true_1@c.us_3EB0000000000000BBBB"


def test_timeout_raises_waha_timeout_after_retries(waha, waha_client, waha_url):
    waha.get(f"{waha_url}/api/server/status", body=requests.ReadTimeout("slow"))

    with pytest.raises(errors.WahaTimeout):
        waha_client.server_status()

    assert len(waha.calls) == 3


# ---------------------------------------------------------------- circuit breaker


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 503, "json": UNAVAILABLE},
        {"status": 500, "json": {"statusCode": 500}},
        {"body": requests.ConnectionError("refused")},
        {"body": requests.ReadTimeout("slow")},
    ],
    ids=["503", "500", "connection", "timeout"],
)
def test_breaker_opens_after_fail_max_and_fails_fast_without_http(waha, make_client, waha_url, failure):
    guarded = make_client(retry_attempts=0, breaker_fail_max=3, breaker_reset_s=60)
    waha.get(f"{waha_url}/api/server/version", **failure)
    for _ in range(3):
        with pytest.raises(errors.WahaError):
            guarded.version()

    with pytest.raises(errors.WahaCircuitOpen):
        guarded.version()

    assert len(waha.calls) == 3


def test_open_breaker_error_is_unavailable(waha, make_client, waha_url):
    guarded = make_client(retry_attempts=0, breaker_fail_max=1, breaker_reset_s=60)
    waha.get(f"{waha_url}/api/server/version", status=503, json=UNAVAILABLE)
    with pytest.raises(errors.WahaUnavailable):
        guarded.version()

    with pytest.raises(errors.WahaUnavailable):
        guarded.get_session("s1")


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, {"message": "Session not found", "statusCode": 404}), (501, {"message": "not implemented"})],
)
def test_breaker_ignores_answers_that_are_not_outages(waha, make_client, waha_url, status, body):
    guarded = make_client(retry_attempts=0, breaker_fail_max=2)
    waha.get(f"{waha_url}/api/sessions/s1", status=status, json=body)
    for _ in range(4):
        with pytest.raises(errors.WahaError):
            guarded.get_session("s1")

    assert guarded.breaker_state == "closed"
    assert len(waha.calls) == 4


def test_breaker_counts_only_consecutive_failures(waha, make_client, waha_url):
    guarded = make_client(retry_attempts=0, breaker_fail_max=2)
    waha.get(f"{waha_url}/api/server/version", status=503, json=UNAVAILABLE)
    waha.get(f"{waha_url}/api/server/version", json={"version": "2026.7.1"})
    waha.get(f"{waha_url}/api/server/version", status=503, json=UNAVAILABLE)

    for _ in range(3):
        try:
            guarded.version()
        except errors.WahaUnavailable:
            pass

    assert guarded.breaker_state == "closed"


def test_breaker_stops_retries_once_it_opens(waha, make_client, waha_url):
    guarded = make_client(retry_attempts=5, breaker_fail_max=2, breaker_reset_s=60)
    waha.get(f"{waha_url}/api/server/version", status=503, json=UNAVAILABLE)

    with pytest.raises(errors.WahaCircuitOpen):
        guarded.version()

    assert len(waha.calls) == 2


def test_breaker_closes_when_server_recovers_after_reset(waha, make_client, waha_url):
    guarded = make_client(retry_attempts=0, breaker_fail_max=1, breaker_reset_s=0.05)
    waha.get(f"{waha_url}/api/server/version", status=503, json=UNAVAILABLE)
    waha.get(f"{waha_url}/api/server/version", json={"version": "2026.7.1"})
    with pytest.raises(errors.WahaUnavailable):
        guarded.version()

    time.sleep(0.06)

    assert guarded.version() == {"version": "2026.7.1"}
    assert guarded.breaker_state == "closed"


def test_breaker_reopens_when_trial_call_fails(waha, make_client, waha_url):
    guarded = make_client(retry_attempts=0, breaker_fail_max=1, breaker_reset_s=0.05)
    waha.get(f"{waha_url}/api/server/version", status=503, json=UNAVAILABLE)
    with pytest.raises(errors.WahaUnavailable):
        guarded.version()
    time.sleep(0.06)
    with pytest.raises(errors.WahaUnavailable):
        guarded.version()

    with pytest.raises(errors.WahaCircuitOpen):
        guarded.version()

    assert len(waha.calls) == 2
