"""Sending, check-exists, typing, inbound media files (CONTRACT 7)."""

from __future__ import annotations

import base64
import threading
import time

import pytest
import requests

from tests.helpers import load_fixture
from tests.helpers import wait_for as wait_until

TEXT = {"session": "default", "chatId": "4915112345678@c.us", "text": "Hallo"}
MISMATCH = "Session status is not as expected. Try again later or restart the session"


def events(server, name=None):
    return [e for e in server.events() if name is None or e["event"] == name]


@pytest.mark.parametrize("engine", ["GOWS", "NOWEB", "WEBJS"])
def test_send_text_answers_201_with_engine_shape(make_api, engine):
    api = make_api(engine=engine)
    api.working("default")
    response = api("POST", "/api/sendText", json=TEXT)
    assert response.status_code == 201
    fixture = load_fixture(f"send-text.response.{engine.lower()}.json")
    assert list(response.json()) == list(fixture)


@pytest.mark.parametrize(
    "engine, read_id",
    [
        ("GOWS", lambda b: b["id"]),
        ("WEBJS", lambda b: b["id"]["_serialized"]),
        ("NOWEB", lambda b: "true_" + b["key"]["remoteJid"].replace("@s.whatsapp.net", "@c.us") + "_" + b["key"]["id"]),
    ],
)
def test_send_response_id_is_the_id_later_events_carry(make_api, engine, read_id):
    api = make_api(engine=engine)
    api.working("default")
    message_id = read_id(api("POST", "/api/sendText", json=TEXT).json())
    acks = wait_until(lambda: [e for e in events(api.server, "message.ack") if e["payload"]["id"] == message_id])
    assert acks and events(api.server, "message.any")[-1]["payload"]["id"] == message_id


def test_send_appends_c_us_to_bare_numbers(api):
    api.working("default")
    body = api("POST", "/api/sendText", json=dict(TEXT, chatId="4915112345678")).json()
    assert body["id"].startswith("true_4915112345678@c.us_")


def test_send_with_same_id_delivers_once(api, server):
    api.working("default")
    first = api("POST", "/api/sendText", json=dict(TEXT, id="BBBBBBBBBBBBBBBBB"))
    second = api("POST", "/api/sendText", json=dict(TEXT, id="BBBBBBBBBBBBBBBBB"))
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert first.json()["id"] == "true_4915112345678@c.us_BBBBBBBBBBBBBBBBB"
    assert len(server.sent_messages("default")) == 1
    assert len(events(server, "message.any")) == 1


def test_send_with_different_ids_delivers_twice(api, server):
    api.working("default")
    api("POST", "/api/sendText", json=dict(TEXT, id="AAAA1"))
    api("POST", "/api/sendText", json=dict(TEXT, id="AAAA2"))
    assert len(server.sent_messages("default")) == 2


def test_send_emits_message_any_then_acks_in_order(api, server):
    api.working("default")
    message_id = api("POST", "/api/sendText", json=TEXT).json()["id"]
    wait_until(lambda: len(events(server, "message.ack")) == 3)
    mine = [e for e in server.events() if e["event"] in ("message.any", "message.ack")]
    assert [(e["event"], e["payload"].get("ack")) for e in mine] == [
        ("message.any", 1),
        ("message.ack", 1),
        ("message.ack", 2),
        ("message.ack", 3),
    ]
    any_payload = mine[0]["payload"]
    assert (any_payload["id"], any_payload["fromMe"], any_payload["source"]) == (message_id, True, "api")
    assert [e["payload"]["ackName"] for e in mine[1:]] == ["SERVER", "DEVICE", "READ"]


def test_sent_messages_are_bounded(make_api):
    api = make_api(max_messages=3)
    api.working("default")
    for i in range(5):
        api("POST", "/api/sendText", json=dict(TEXT, text=str(i)))
    assert [m["body"] for m in api.server.sent_messages("default")] == ["2", "3", "4"]


def test_send_without_session_answers_422_session_required(api):
    response = api("POST", "/api/sendText", json={"chatId": "1@c.us", "text": "x"})
    assert response.status_code == 422
    assert response.json() == {"error": "Session name is required"}


def test_send_to_unknown_session_answers_422_does_not_exist(api):
    response = api("POST", "/api/sendText", json=dict(TEXT, session="ghost"))
    assert response.status_code == 422
    assert response.json() == {"error": 'Session "ghost" does not exist', "session": "ghost"}


def test_send_while_scanning_answers_422_status_mismatch(api):
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    response = api("POST", "/api/sendText", json=TEXT)
    assert response.status_code == 422
    assert response.json() == {
        "error": MISMATCH,
        "session": "default",
        "status": "SCAN_QR_CODE",
        "expected": ["WORKING"],
    }


def test_send_to_stopped_session_answers_422_with_stopped(api):
    api.create("default", start=False)
    assert api("POST", "/api/sendText", json=TEXT).json()["status"] == "STOPPED"


def test_status_wait_lets_a_send_succeed_once_the_session_works(make_api):
    api = make_api(status_wait=2.0)
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    threading.Timer(0.2, lambda: api.server.scan("default")).start()
    assert api("POST", "/api/sendText", json=TEXT).status_code == 201


def test_send_without_chat_id_answers_500_shape(api):
    api.working("default")
    response = api("POST", "/api/sendText", json={"session": "default", "text": "x"})
    assert response.status_code == 500
    body = response.json()
    assert body["statusCode"] == 500 and body["request"]["path"] == "/api/sendText"


def test_send_image_by_url_answers_201(api):
    api.working("default")
    response = api("POST", "/api/sendImage", json=load_fixture("send-image.request.json"))
    assert response.status_code == 201
    assert "imageMessage" in response.json()["_data"]


def test_send_file_with_base64_data_is_downloadable_from_media_url(api, server):
    api.working("default")
    request_body = load_fixture("send-file.request.base64.json")
    api("POST", "/api/sendFile", json=request_body)
    media = events(server, "message.any")[-1]["payload"]["media"]
    assert media["mimetype"] == "application/pdf" and media["url"].endswith(".pdf")
    download = api("GET", media["url"].replace(server.url, ""))
    assert download.content == base64.b64decode(request_body["file"]["data"])


@pytest.mark.parametrize("path", ["/api/sendVoice", "/api/sendVideo"])
def test_send_voice_and_video_answer_201(api, path):
    api.working("default")
    body = {
        "session": "default",
        "chatId": "4915112345678@c.us",
        "convert": False,
        "file": {"url": "https://files.example.com/x"},
    }
    assert api("POST", path, json=body).status_code == 201


@pytest.mark.parametrize("path", ["/api/startTyping", "/api/stopTyping"])
def test_typing_answers_201_result_true(api, path):
    api.working("default")
    response = api("POST", path, json={"session": "default", "chatId": "4915112345678@c.us"})
    assert (response.status_code, response.json()) == (201, {"result": True})


def test_send_seen_answers_201(api):
    api.working("default")
    response = api("POST", "/api/sendSeen", json={"session": "default", "chatId": "4915112345678@c.us"})
    assert response.status_code == 201


@pytest.mark.parametrize("phone", ["4915112345678", "+4915112345678", "4915112345678@c.us"])
def test_check_exists_finds_plausible_numbers(api, phone):
    api.working("default")
    response = api("GET", "/api/contacts/check-exists", params={"phone": phone, "session": "default"})
    assert response.json() == {"numberExists": True, "chatId": "4915112345678@c.us"}


@pytest.mark.parametrize("phone", ["000123456789", "4900000000000", "123"])
def test_check_exists_reports_unknown_numbers(api, phone):
    api.working("default")
    response = api("GET", "/api/contacts/check-exists", params={"phone": phone, "session": "default"})
    assert response.json() == {"numberExists": False}


def test_check_exists_needs_working_session(api):
    api.create("default", start=True)
    response = api("GET", "/api/contacts/check-exists", params={"phone": "4915112345678", "session": "default"})
    assert response.status_code == 422


def test_inbound_image_media_url_downloads_with_key(api, server):
    api.working("default")
    data = b"\xff\xd8\xff\xe0fake-jpeg"
    message_id = server.inbound(
        "default", "4915112345678", "Röntgenbild", {"mimetype": "image/jpeg", "data": base64.b64encode(data).decode()}
    )
    media = events(server, "message")[-1]["payload"]["media"]
    assert media["url"] == f"{server.url}/api/files/default/{message_id}.jpeg"
    download = api("GET", f"/api/files/default/{message_id}.jpeg")
    assert (download.status_code, download.headers["Content-Type"], download.content) == (200, "image/jpeg", data)


def test_media_download_without_key_answers_401(api, server):
    api.working("default")
    message_id = server.inbound("default", "4915112345678", "pic", {"mimetype": "image/png"})
    response = requests.get(f"{server.url}/api/files/default/{message_id}.png", timeout=5)
    assert response.status_code == 401


def test_media_expires_after_files_lifetime(make_api):
    api = make_api(files_lifetime=0.1)
    api.working("default")
    message_id = api.server.inbound("default", "4915112345678", "pic", {"mimetype": "image/png"})
    time.sleep(0.15)
    response = api("GET", f"/api/files/default/{message_id}.png")
    assert response.status_code == 404
    assert response.json()["error"]["key"] == "FILE_NOT_FOUND"


def test_inbound_emits_message_and_message_any(api, server):
    api.working("default")
    message_id = server.inbound("default", "491709999999", "hi")
    produced = [e for e in server.events() if e["event"] in ("message", "message.any")]
    assert [e["event"] for e in produced] == ["message", "message.any"]
    assert produced[0]["id"] != produced[1]["id"]
    payload = produced[0]["payload"]
    assert (payload["id"], payload["from"], payload["fromMe"], payload["body"], payload["to"]) == (
        message_id,
        "491709999999@c.us",
        False,
        "hi",
        None,
    )


def test_inbound_on_webjs_puts_own_id_in_to(make_api):
    api = make_api(engine="WEBJS")
    api.working("default")
    api.server.inbound("default", "491709999999", "hi")
    assert events(api.server, "message")[-1]["payload"]["to"] == "491701234567@c.us"


def test_group_message_acks_use_message_ack_group(api, server):
    api.working("default")
    api("POST", "/api/sendText", json=dict(TEXT, chatId="120363025246125888@g.us"))
    wait_until(lambda: len(events(server, "message.ack.group")) == 3)
    assert events(server, "message.ack") == []


def test_stop_right_after_send_drops_pending_acks(make_api):
    api = make_api(ack_delay=0.1)
    api.working("default")
    api("POST", "/api/sendText", json=TEXT)
    api("POST", "/api/sessions/default/restart")
    api.wait_status("default", "WORKING")
    time.sleep(0.35)
    assert events(api.server, "message.ack") == []


@pytest.mark.parametrize(
    "engine, fixture", [("GOWS", "webhook.message.gows.json"), ("WEBJS", "webhook.message.webjs.json")]
)
def test_inbound_payload_has_fixture_fields(make_api, engine, fixture):
    api = make_api(engine=engine)
    api.working("default")
    api.server.inbound("default", "4915112345678", "Passt Donnerstag 10 Uhr?")
    payload = events(api.server, "message")[-1]["payload"]
    assert set(load_fixture(fixture)["payload"]) <= set(payload)


def test_outgoing_and_ack_payloads_have_fixture_fields(api, server):
    api.working("default")
    api("POST", "/api/sendText", json=TEXT)
    wait_until(lambda: events(server, "message.ack"))
    assert set(load_fixture("webhook.message.any.fromme.json")["payload"]) <= set(
        events(server, "message.any")[-1]["payload"]
    )
    assert set(load_fixture("webhook.message.ack.json")["payload"]) == set(events(server, "message.ack")[-1]["payload"])


def test_chat_message_lookup_finds_a_sent_message_by_its_pre_generated_id(make_api):
    api = make_api(engine="GOWS")
    api.working("default")
    api("POST", "/api/sendText", json={**TEXT, "id": "3EB0AAAABBBBCCCCDDDD"})
    message_id = "true_4915112345678@c.us_3EB0AAAABBBBCCCCDDDD"

    found = api("GET", f"/api/default/chats/4915112345678@c.us/messages/{message_id}")
    missing = api("GET", "/api/default/chats/4915112345678@c.us/messages/true_4915112345678@c.us_3EB0FFFF")

    assert found.status_code == 200
    assert (found.json()["id"], found.json()["fromMe"], found.json()["body"]) == (message_id, True, "Hallo")
    assert found.json()["ack"] >= 1
    assert missing.status_code == 404 and missing.json()["message"] == "Message not found"
