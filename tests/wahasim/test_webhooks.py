"""Webhook delivery: one POST per event per URL, headers, HMAC, retries (CONTRACT 8)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time

import pytest

from tests.helpers import hook, load_fixture
from tests.helpers import wait_for as wait_until
from wahasim.webhooks import retry_delay, serialize, sign

ENVELOPE_KEYS = ["id", "timestamp", "event", "session", "metadata", "me", "payload", "engine", "environment"]
KEY = "whsec_test_0123456789abcdef"
NO_RETRY_DELAY = {"policy": "constant", "delaySeconds": 0, "attempts": 3}


def working_with_hook(api, url, name="default", **webhook):
    config = {"metadata": {"tenant.id": "t_42"}, "webhooks": [hook(url, **webhook)]}
    api.working(name, config=config)


@pytest.mark.parametrize("vector", load_fixture("webhook.hmac-vectors.json")["vectors"], ids=lambda v: v["name"][:20])
def test_sign_matches_published_vectors(vector):
    assert sign(vector["key"], vector["raw_body"].encode("utf-8")) == vector["x_webhook_hmac"]


def test_serialize_reproduces_waha_bytes_of_fixture_event():
    vector = load_fixture("webhook.hmac-vectors.json")["vectors"][1]
    event = load_fixture("webhook.message.webjs.json")
    assert serialize(event) == vector["raw_body"].encode("utf-8")


def test_delivery_carries_waha_headers(api, receiver):
    working_with_hook(
        api,
        receiver.url,
        events=["session.status"],
        hmac={"key": KEY},
        customHeaders=[{"name": "X-Tenant", "value": "t_42"}],
    )
    call = receiver.wait(1)[0]
    headers, envelope = call["headers"], call["json"]
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "WAHA/2026.7.1"
    assert re.fullmatch(r"[0-9a-z]{18}", headers["X-Webhook-Request-Id"])
    assert headers["X-Webhook-Timestamp"] == str(envelope["timestamp"])
    assert headers["X-Webhook-Hmac-Algorithm"] == "sha512"
    assert headers["X-Tenant"] == "t_42"


def test_hmac_header_verifies_against_exact_body(api, receiver):
    working_with_hook(api, receiver.url, hmac={"key": KEY})
    call = receiver.wait(1)[0]
    expected = hmac.new(KEY.encode(), call["body"], hashlib.sha512).hexdigest()
    assert hmac.compare_digest(call["headers"]["X-Webhook-Hmac"], expected)


def test_no_hmac_headers_without_key(api, receiver):
    working_with_hook(api, receiver.url)
    headers = receiver.wait(1)[0]["headers"]
    assert "X-Webhook-Hmac" not in headers and "X-Webhook-Hmac-Algorithm" not in headers


def test_body_is_compact_json_in_waha_key_order(api, receiver):
    working_with_hook(api, receiver.url)
    call = receiver.wait(1)[0]
    envelope = call["json"]
    assert list(envelope) == ENVELOPE_KEYS
    assert call["body"] == json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
    assert envelope["metadata"] == {"tenant.id": "t_42"}
    assert envelope["environment"] == {
        "version": "2026.7.1",
        "engine": "GOWS",
        "tier": "PLUS",
        "browser": None,
        "platform": "linux/x64",
        "worker": {"id": None},
    }


def test_envelope_without_metadata_omits_the_key(api, receiver):
    api.working("default", config={"webhooks": [hook(receiver.url)]})
    assert "metadata" not in receiver.wait(1)[0]["json"]


def test_envelope_keys_match_fixture_order(api, receiver):
    api.working("default", config={"webhooks": [hook(receiver.url)]})
    fixture = load_fixture("webhook.session.status.working.json")
    envelope = receiver.wait(3)[-1]["json"]
    assert [k for k in fixture if k != "metadata"] == list(envelope)
    assert list(envelope["payload"]) == list(fixture["payload"])


def test_event_id_is_evt_and_lowercase_ulid(api, receiver):
    working_with_hook(api, receiver.url)
    assert re.fullmatch(r"evt_[0-9a-hjkmnp-tv-z]{26}", receiver.wait(1)[0]["json"]["id"])


def test_non_ascii_text_is_sent_as_utf8(api, receiver):
    working_with_hook(api, receiver.url, events=["message"])
    api.server.inbound("default", "4915112345678", "Hallo, ich möchte 🙂")
    call = receiver.wait(1, "message")[0]
    assert "Hallo, ich möchte 🙂".encode() in call["body"]


def test_delivery_is_retried_after_500_with_same_request_id(api, receiver):
    receiver.statuses.extend([500, 500])
    working_with_hook(api, receiver.url, events=["session.status"], retries=NO_RETRY_DELAY, hmac={"key": KEY})
    calls = receiver.scripted(3)
    assert [c["status"] for c in calls] == [500, 500, 200]
    assert len({c["headers"]["X-Webhook-Request-Id"] for c in calls}) == 1
    assert len({c["body"] for c in calls}) == 1
    assert len({c["headers"]["X-Webhook-Hmac"] for c in calls}) == 1


def test_4xx_is_retried_too(api, receiver):
    receiver.statuses.append(404)
    working_with_hook(api, receiver.url, events=["session.status"], retries=NO_RETRY_DELAY)
    calls = receiver.scripted(2)
    assert [c["status"] for c in calls] == [404, 200]
    assert calls[0]["json"]["id"] == calls[1]["json"]["id"]


def test_attempts_counts_retries_then_event_is_dropped(api, receiver):
    receiver.statuses.extend([500] * 10)
    api.create(
        "default",
        start=False,
        config={
            "webhooks": [hook(receiver.url, events=["session.status"], retries={"delaySeconds": 0, "attempts": 2})]
        },
    )
    api("POST", "/api/sessions/default/start")
    calls = receiver.scripted(3)
    time.sleep(0.1)  # a fourth attempt would come at once (delaySeconds 0)
    again = [c for c in receiver.events() if c["json"]["id"] == calls[0]["json"]["id"]]
    assert [c["status"] for c in again] == [500, 500, 500]
    assert len({c["json"]["id"] for c in calls}) == 1


def test_network_error_is_retried_and_logged(api, server):
    url = "http://127.0.0.1:9/unreachable"  # discard port: connection refused
    api.working("default", config={"webhooks": [hook(url, events=["session.status"], retries=NO_RETRY_DELAY)]})
    log = wait_until(lambda: [e for e in server.webhook_log() if e["attempt"] == 4])
    assert log[0]["status"] is None and log[0]["error"]


def test_webhook_log_records_status_and_attempt(api, server, receiver):
    receiver.statuses.append(503)
    working_with_hook(api, receiver.url, events=["session.status"], retries=NO_RETRY_DELAY)
    entries = wait_until(lambda: [e for e in server.webhook_log() if e["ok"]] and server.webhook_log())
    first = entries[0]
    assert (first["url"], first["event"], first["status"], first["attempt"]) == (receiver.url, "session.status", 503, 1)


def test_constant_delay_spaces_retries(api, receiver):
    receiver.statuses.append(500)
    working_with_hook(
        api, receiver.url, events=["session.status"], retries={"policy": "constant", "delaySeconds": 0.3, "attempts": 1}
    )
    calls = receiver.wait(4)
    first, retry = [
        c for c in calls if c["headers"]["X-Webhook-Request-Id"] == calls[0]["headers"]["X-Webhook-Request-Id"]
    ]
    assert retry["at"] - first["at"] >= 0.29


@pytest.mark.parametrize("policy, expected", [("constant", [2, 2, 2]), ("linear", [2, 4, 6])])
def test_retry_delay_policies(policy, expected):
    assert [retry_delay(policy, 2, n) for n in (1, 2, 3)] == expected


def test_exponential_retry_delay_doubles_with_jitter():
    for n, base in ((1, 2), (2, 4), (3, 8), (4, 16)):
        assert base <= retry_delay("exponential", 2, n) <= base * 1.2


def test_zero_delay_means_no_delay():
    assert retry_delay("exponential", 0, 5) == 0


def test_events_filter_limits_deliveries(api, receiver):
    working_with_hook(api, receiver.url, events=["message"])
    api.server.inbound("default", "4915112345678", "hi")
    receiver.wait(1)
    time.sleep(0.1)
    assert {c["json"]["event"] for c in receiver.events()} == {"message"}


def test_star_subscribes_to_all_events(api, receiver):
    working_with_hook(api, receiver.url, events=["*"])
    api.server.inbound("default", "4915112345678", "hi")
    receiver.wait(5)
    assert {"session.status", "message", "message.any"} <= {c["json"]["event"] for c in receiver.events()}


def test_one_post_per_url(api, receiver):
    api.working(
        "default",
        config={
            "webhooks": [hook(receiver.url, events=["message"]), hook(receiver.url + "?second", events=["message"])]
        },
    )
    api.server.inbound("default", "4915112345678", "hi")
    calls = receiver.wait(2)
    time.sleep(0.1)
    assert len(receiver.events()) == 2
    assert calls[0]["json"]["id"] == calls[1]["json"]["id"]


def test_first_attempts_follow_production_order(api, receiver):
    working_with_hook(api, receiver.url, events=["*"])
    for text in ("1", "2", "3"):
        api("POST", "/api/sendText", json={"session": "default", "chatId": "4915112345678@c.us", "text": text})
    receiver.wait(3 + 3 * 4)
    produced = [e["id"] for e in api.server.events()]
    delivered = [c["json"]["id"] for c in receiver.events()]
    assert delivered == produced


def test_slow_receiver_does_not_block_the_api(api, receiver):
    receiver.delay = 0.6
    working_with_hook(api, receiver.url, events=["*"])
    started = time.monotonic()
    response = api("POST", "/api/sendText", json={"session": "default", "chatId": "4915112345678@c.us", "text": "x"})
    assert response.status_code == 201
    assert time.monotonic() - started < 0.5
