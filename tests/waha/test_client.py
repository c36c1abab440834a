"""Each WahaClient method sends the request WAHA expects and returns the parsed answer (WAHA mocked)."""

from __future__ import annotations

import base64
import json
import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from portal.waha import SendResult, WahaSettings, close_all_clients, errors, get_client

WA_ID = re.compile(r"3EB0[0-9A-F]{16}")


def last_request(waha):
    return waha.calls[-1].request


def body_of(request) -> dict:
    return json.loads(request.body)


def query_of(request) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}


# ---------------------------------------------------------------- sessions


def test_create_session_posts_name_start_and_config(waha, waha_client, waha_url, api_key, load_fixture):
    wanted = load_fixture("session.create.request.json")
    waha.post(f"{waha_url}/api/sessions", status=201, json=load_fixture("session.create.response.json"))

    info = waha_client.create_session(wanted["name"], wanted["config"], start=True)

    request = last_request(waha)
    assert body_of(request) == wanted
    assert request.headers["X-Api-Key"] == api_key
    assert info == load_fixture("session.create.response.json")


def test_create_session_sends_start_false_explicitly(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/sessions", status=201, json={"name": "s1", "status": "STOPPED"})

    waha_client.create_session("s1", None, start=False)

    assert body_of(last_request(waha)) == {"name": "s1", "start": False}


def test_update_session_puts_whole_config(waha, waha_client, waha_url):
    config = {"metadata": {"tenant.id": "t_1"}}
    waha.put(f"{waha_url}/api/sessions/s1", json={"name": "s1", "status": "STARTING", "config": config})

    info = waha_client.update_session("s1", config)

    request = last_request(waha)
    assert (request.method, body_of(request)) == ("PUT", {"config": config})
    assert info["config"] == config


def test_get_session_returns_session_info(waha, waha_client, waha_url, load_fixture):
    waha.get(f"{waha_url}/api/sessions/default", json=load_fixture("session.get.working.json"))

    assert waha_client.get_session("default") == load_fixture("session.get.working.json")


@pytest.mark.parametrize(("all_flag", "sent"), [(True, "true"), (False, "false")])
def test_list_sessions_sends_all_flag(waha, waha_client, waha_url, load_fixture, all_flag, sent):
    waha.get(f"{waha_url}/api/sessions", json=load_fixture("sessions.list.all.json"))

    sessions = waha_client.list_sessions(all=all_flag)

    assert query_of(last_request(waha)) == {"all": sent}
    assert [s["name"] for s in sessions] == ["default", "tenant_7"]


def test_delete_session_accepts_empty_body(waha, waha_client, waha_url):
    waha.delete(f"{waha_url}/api/sessions/s1", body="")

    assert waha_client.delete_session("s1") is None
    assert last_request(waha).method == "DELETE"


@pytest.mark.parametrize("action", ["start", "stop", "logout", "restart"])
def test_session_action_posts_to_its_path(waha, waha_client, waha_url, action):
    waha.post(f"{waha_url}/api/sessions/s1/{action}", status=201, json={"name": "s1", "status": "STARTING"})

    info = getattr(waha_client, f"{action}_session")("s1")

    assert last_request(waha).method == "POST"
    assert info == {"name": "s1", "status": "STARTING"}


def test_start_session_already_running_on_core_returns_session(waha, waha_client, waha_url, load_fixture):
    row = load_fixture("errors.json")["422 Core image (< 2026.6.1): start while 'default' already running"]
    waha.post(f"{waha_url}/api/sessions/default/start", status=row["status"], json=row["body"])
    waha.get(f"{waha_url}/api/sessions/default", json=load_fixture("session.get.working.json"))

    assert waha_client.start_session("default")["status"] == "WORKING"


def test_session_name_is_escaped_in_the_path(waha, waha_client, waha_url):
    waha.get(f"{waha_url}/api/sessions/a%2Fb", json={"name": "a/b"})

    waha_client.get_session("a/b")

    assert urlsplit(last_request(waha).url).path == "/api/sessions/a%2Fb"


def test_get_me_returns_account(waha, waha_client, waha_url):
    me = {"id": "491701234567@c.us", "pushName": "Acme"}
    waha.get(f"{waha_url}/api/sessions/s1/me", json=me)

    assert waha_client.get_me("s1") == me


@pytest.mark.parametrize("body", ["", "null"])
def test_get_me_returns_none_before_login(waha, waha_client, waha_url, body):
    waha.get(f"{waha_url}/api/sessions/s1/me", body=body, content_type="application/json")

    assert waha_client.get_me("s1") is None


# ---------------------------------------------------------------- pairing


def test_get_qr_asks_for_json_with_exact_accept_header(waha, waha_client, waha_url, load_fixture):
    answer = load_fixture("qr.responses.json")["GET /api/default/auth/qr?format=image  (Accept: application/json)"]
    waha.get(f"{waha_url}/api/default/auth/qr", json=answer["body"])

    qr = waha_client.get_qr("default")

    request = last_request(waha)
    assert request.headers["Accept"] == "application/json"
    assert query_of(request) == {"format": "image"}
    assert qr == answer["body"]


def test_get_qr_turns_raw_png_into_base64(waha, waha_client, waha_url):
    png = b"\x89PNG\r\n\x1a\nfake"
    waha.get(f"{waha_url}/api/default/auth/qr", body=png, content_type="image/png")

    assert waha_client.get_qr("default") == {"mimetype": "image/png", "data": base64.b64encode(png).decode()}


def test_get_qr_value_asks_for_raw_format(waha, waha_client, waha_url, load_fixture):
    answer = load_fixture("qr.responses.json")["GET /api/default/auth/qr?format=raw"]
    waha.get(f"{waha_url}/api/default/auth/qr", json=answer["body"])

    value = waha_client.get_qr_value("default")

    assert query_of(last_request(waha)) == {"format": "raw"}
    assert value == answer["body"]["value"]


def test_request_pairing_code_sends_digits_and_returns_code(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/default/auth/request-code", status=201, json={"code": "K7QM-2XRT"})

    code = waha_client.request_pairing_code("default", "+49 170 1234567")

    assert body_of(last_request(waha)) == {"phoneNumber": "491701234567"}
    assert code == "K7QM-2XRT"


def test_get_screenshot_asks_for_json_for_the_session(waha, waha_client, waha_url):
    shot = {"mimetype": "image/jpeg", "data": "/9j/4AAQ"}
    waha.get(f"{waha_url}/api/screenshot", json=shot)

    result = waha_client.get_screenshot("s1")

    request = last_request(waha)
    assert (request.headers["Accept"], query_of(request)) == ("application/json", {"session": "s1"})
    assert result == shot


# ---------------------------------------------------------------- messaging


def test_send_text_posts_session_chat_text_and_id(waha, waha_client, waha_url, load_fixture):
    waha.post(f"{waha_url}/api/sendText", status=201, json=load_fixture("send-text.response.gows.json"))

    result = waha_client.send_text("default", "4915112345678@c.us", "Hallo", message_id="3EB0AABBCCDDEEFF0011")

    assert body_of(last_request(waha)) == {
        "session": "default",
        "chatId": "4915112345678@c.us",
        "text": "Hallo",
        "linkPreview": True,
        "id": "3EB0AABBCCDDEEFF0011",
    }
    expected_raw = load_fixture("send-text.response.gows.json")
    assert result == SendResult("true_4915112345678@c.us_3EB0AABBCCDDEEFF0011", expected_raw)


def test_a_send_puts_on_the_wire_what_requests_itself_would(waha, waha_client, waha_url, api_key):
    # Sends are prepared by the transport, not by requests.Session: the same headers, body bytes and URL.
    waha.post(f"{waha_url}/api/sendText", status=201, json={"id": "true_491701234567@c.us_3EB0AAAAAAAAAAAAAAAA"})

    waha_client.send_text("s1", "491701234567@c.us", "Olá — ünïcode 👋", message_id="3EB0AAAAAAAAAAAAAAAA")

    sent = last_request(waha)
    expected = requests.Request(
        "POST",
        f"{waha_url}/api/sendText",
        json=json.loads(sent.body),
        headers={**requests.utils.default_headers(), "Accept": "application/json", "X-Api-Key": api_key},
    ).prepare()
    assert (sent.method, sent.url, sent.body) == (expected.method, expected.url, expected.body)
    assert dict(sent.headers) == dict(expected.headers)
    assert body_of(sent)["text"] == "Olá — ünïcode 👋"


def test_send_text_passes_reply_to_and_link_preview(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/sendText", status=201, json={"id": "true_1@c.us_X"})

    waha_client.send_text("s1", "1@c.us", "ok", message_id="M1", reply_to="false_1@c.us_Q", link_preview=False)

    body = body_of(last_request(waha))
    assert (body["reply_to"], body["linkPreview"]) == ("false_1@c.us_Q", False)


@pytest.mark.parametrize("endpoint", ["sendImage", "sendFile", "sendVoice", "sendVideo"])
def test_media_sends_pass_reply_to(waha, waha_client, waha_url, endpoint):
    waha.post(f"{waha_url}/api/{endpoint}", status=201, json={"id": "true_1@c.us_X"})
    method = {"sendImage": "send_image", "sendFile": "send_file", "sendVoice": "send_voice", "sendVideo": "send_video"}

    getattr(waha_client, method[endpoint])(
        "s1", "1@c.us", {"mimetype": "image/png", "url": "https://example.com/a.png"}, reply_to="false_1@c.us_Q"
    )

    assert body_of(last_request(waha))["reply_to"] == "false_1@c.us_Q"


def test_send_text_generates_a_message_id_when_none_given(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/sendText", status=201, json={})

    result = waha_client.send_text("s1", "4915112345678@c.us", "hi")

    sent_id = body_of(last_request(waha))["id"]
    assert WA_ID.fullmatch(sent_id)
    assert result.message_id == f"true_4915112345678@c.us_{sent_id}"


def test_send_text_turns_phone_number_into_chat_id(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/sendText", status=201, json={})

    waha_client.send_text("s1", "+49 151 12345678", "hi", message_id="M1")

    assert body_of(last_request(waha))["chatId"] == "4915112345678@c.us"


@pytest.mark.parametrize(
    "fixture", ["send-text.response.gows.json", "send-text.response.noweb.json", "send-text.response.webjs.json"]
)
def test_send_text_normalises_every_engine_response(waha, waha_client, waha_url, load_fixture, fixture):
    waha.post(f"{waha_url}/api/sendText", status=201, json=load_fixture(fixture))

    result = waha_client.send_text("default", "4915112345678@c.us", "x", message_id="3EB0AABBCCDDEEFF0011")

    assert result.message_id == "true_4915112345678@c.us_3EB0AABBCCDDEEFF0011"


def test_send_image_posts_file_caption_and_id(waha, waha_client, waha_url, load_fixture):
    wanted = load_fixture("send-image.request.json")
    waha.post(f"{waha_url}/api/sendImage", status=201, json={"id": "true_4915112345678@c.us_M1"})

    result = waha_client.send_image(
        wanted["session"], wanted["chatId"], wanted["file"], caption=wanted["caption"], message_id="M1"
    )

    assert body_of(last_request(waha)) == {**wanted, "id": "M1"}
    assert result.message_id == "true_4915112345678@c.us_M1"


def test_send_file_posts_base64_file(waha, waha_client, waha_url, load_fixture):
    wanted = load_fixture("send-file.request.base64.json")
    waha.post(f"{waha_url}/api/sendFile", status=201, json={"id": "true_4915112345678@c.us_M2"})

    waha_client.send_file(
        wanted["session"], wanted["chatId"], wanted["file"], caption=wanted["caption"], message_id="M2"
    )

    assert body_of(last_request(waha)) == {**wanted, "id": "M2"}


def test_send_voice_posts_convert_flag(waha, waha_client, waha_url):
    file = {"mimetype": "audio/ogg; codecs=opus", "url": "https://files.example.com/v.ogg"}
    waha.post(f"{waha_url}/api/sendVoice", status=201, json={})

    waha_client.send_voice("s1", "1@c.us", file, convert=False, message_id="M3")

    assert body_of(last_request(waha)) == {
        "session": "s1",
        "chatId": "1@c.us",
        "file": file,
        "convert": False,
        "id": "M3",
    }


def test_send_video_posts_convert_note_and_caption(waha, waha_client, waha_url):
    file = {"mimetype": "video/mp4", "filename": "a.mp4", "url": "https://files.example.com/a.mp4"}
    waha.post(f"{waha_url}/api/sendVideo", status=201, json={})

    waha_client.send_video("s1", "1@c.us", file, caption="look", as_note=True, message_id="M4")

    assert body_of(last_request(waha)) == {
        "session": "s1",
        "chatId": "1@c.us",
        "file": file,
        "caption": "look",
        "convert": True,
        "asNote": True,
        "id": "M4",
    }


@pytest.mark.parametrize(
    "file",
    [{"url": "https://x/y.png"}, {"mimetype": "image/png"}, {"mimetype": "image/png", "url": "u", "data": "d"}],
)
def test_send_image_rejects_incomplete_file_without_calling_waha(waha, waha_client, file):
    with pytest.raises(ValueError):
        waha_client.send_image("s1", "1@c.us", file)
    assert len(waha.calls) == 0


def test_check_number_sends_digits_and_session(waha, waha_client, waha_url, load_fixture):
    answer = load_fixture("misc.responses.json")["GET /api/contacts/check-exists?phone=4915112345678&session=default"]
    waha.get(f"{waha_url}/api/contacts/check-exists", json=answer["body"])

    result = waha_client.check_number("default", "+49 151 12345678")

    assert query_of(last_request(waha)) == {"phone": "4915112345678", "session": "default"}
    assert result == {"numberExists": True, "chatId": "4915112345678@c.us"}


def test_check_number_unknown_number_has_no_chat_id(waha, waha_client, waha_url):
    waha.get(f"{waha_url}/api/contacts/check-exists", json={"numberExists": False})

    assert waha_client.check_number("default", "4900000000000") == {"numberExists": False, "chatId": None}


# ---------------------------------------------------------------- media


def test_download_media_sends_api_key_and_returns_bytes(waha, waha_client, waha_url, api_key):
    url = f"{waha_url}/api/files/default/true_1@c.us_M.jpeg"
    waha.get(url, body=b"JPEGDATA", content_type="image/jpeg")

    content, content_type = waha_client.download_media(url)

    assert last_request(waha).headers["X-Api-Key"] == api_key
    assert (content, content_type) == (b"JPEGDATA", "image/jpeg")


def test_download_media_fetches_waha_file_path_from_our_server(waha, waha_client, waha_url):
    waha.get(f"{waha_url}/api/files/default/M.jpeg", body=b"x", content_type="image/jpeg")

    waha_client.download_media("http://localhost:3000/api/files/default/M.jpeg")

    assert last_request(waha).url == f"{waha_url}/api/files/default/M.jpeg"


def test_download_media_refuses_other_hosts(waha, waha_client):
    with pytest.raises(ValueError):
        waha_client.download_media("https://evil.example.com/steal")
    assert len(waha.calls) == 0


def test_download_media_over_cap_raises(waha, waha_client, waha_url):
    waha.get(f"{waha_url}/api/files/s/big.bin", body=b"x" * 2048, content_type="application/octet-stream")

    with pytest.raises(errors.WahaMediaTooLarge):
        waha_client.download_media(f"{waha_url}/api/files/s/big.bin", max_bytes=1024)


def test_download_media_missing_file_raises_not_found(waha, waha_client, waha_url):
    body = {"error": {"code": 404, "key": "FILE_NOT_FOUND", "message": "File not found", "details": "expired"}}
    waha.get(f"{waha_url}/api/files/s/gone.jpeg", status=404, json=body)

    with pytest.raises(errors.WahaNotFound):
        waha_client.download_media(f"{waha_url}/api/files/s/gone.jpeg")


# ---------------------------------------------------------------- server


def test_ping_returns_true_on_pong(waha, waha_client, waha_url):
    waha.get(f"{waha_url}/ping", json={"message": "pong"})

    assert waha_client.ping() is True


def test_ping_returns_false_when_unreachable(waha, waha_client, waha_url):
    waha.get(f"{waha_url}/ping", body=requests.ConnectionError("refused"))

    assert waha_client.ping() is False


def test_health_returns_report(waha, waha_client, waha_url, load_fixture):
    report = load_fixture("misc.responses.json")["GET /health (healthy)"]["body"]
    waha.get(f"{waha_url}/health", json=report)

    assert waha_client.health() == report


def test_health_returns_unhealthy_report_instead_of_raising(waha, waha_client, waha_url):
    report = {"status": "error", "info": {}, "error": {"mediaFiles.space": {"status": "down"}}, "details": {}}
    waha.get(f"{waha_url}/health", status=503, json=report)

    assert waha_client.health() == report


def test_health_on_old_core_raises_not_supported(waha, waha_client, waha_url, load_fixture):
    answer = load_fixture("misc.responses.json")["GET /health (Core image before 2026.6.1)"]
    waha.get(f"{waha_url}/health", status=answer["status"], json=answer["body"])

    with pytest.raises(errors.WahaNotSupported):
        waha_client.health()


def test_version_returns_server_version(waha, waha_client, waha_url, load_fixture):
    answer = load_fixture("misc.responses.json")["GET /api/server/version"]["body"]
    waha.get(f"{waha_url}/api/server/version", json=answer)

    assert waha_client.version() == answer


def test_server_status_returns_start_timestamp(waha, waha_client, waha_url, load_fixture):
    answer = load_fixture("misc.responses.json")["GET /api/server/status"]["body"]
    waha.get(f"{waha_url}/api/server/status", json=answer)

    assert waha_client.server_status()["startTimestamp"] == 1767225000000


# ---------------------------------------------------------------- observer, logging, registry


def test_observer_hears_each_call_with_outcome(waha, make_client, waha_url):
    heard = []
    observed = make_client(observer=lambda name, status, seconds: heard.append((name, status, seconds >= 0)))
    waha.get(f"{waha_url}/api/sessions/ok", json={"name": "ok"})
    waha.get(f"{waha_url}/api/sessions/gone", status=404, json={"message": "Session not found", "statusCode": 404})

    observed.get_session("ok")
    with pytest.raises(errors.WahaNotFound):
        observed.get_session("gone")

    assert heard == [("get_session", "ok", True), ("get_session", "WahaNotFound", True)]


def test_observer_failure_does_not_break_the_call(waha, make_client, waha_url):
    def broken(*_):
        raise RuntimeError("metrics down")

    observed = make_client(observer=broken)
    waha.get(f"{waha_url}/api/sessions/ok", json={"name": "ok"})

    assert observed.get_session("ok") == {"name": "ok"}


def test_calls_are_logged_without_key_or_message_text(waha, waha_client, waha_url, api_key, caplog):
    waha.post(f"{waha_url}/api/sendText", status=201, json={})

    with caplog.at_level(logging.DEBUG, logger="portal.waha"):
        waha_client.send_text("s1", "1@c.us", "secret words", message_id="M1")

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "POST /api/sendText -> 201" in logged
    assert api_key not in logged and "secret words" not in logged


def test_settings_repr_hides_api_key(api_key):
    assert api_key not in repr(WahaSettings(api_key=api_key))


def test_get_client_returns_one_client_per_server():
    try:
        first = get_client(WahaSettings(base_url="http://a:3000", api_key="k"))
        assert get_client(WahaSettings(base_url="http://a:3000/", api_key="k")) is first
        assert get_client(WahaSettings(base_url="http://b:3000", api_key="k")) is not first
        assert get_client(WahaSettings(base_url="http://a:3000", api_key="other")) is not first
    finally:
        close_all_clients()


def test_get_client_after_close_builds_a_new_client():
    try:
        first = get_client(WahaSettings(base_url="http://a:3000", api_key="k"))
        first.close()
        assert get_client(WahaSettings(base_url="http://a:3000", api_key="k")) is not first
    finally:
        close_all_clients()


def test_settings_reject_impossible_values():
    with pytest.raises(ValueError, match="pool_min"):
        WahaSettings(pool_max=2, pool_min=3)


def test_get_chat_message_reads_one_message_by_id(waha, waha_client, waha_url):
    message = {"id": "true_491701234567@c.us_3EB0AA", "fromMe": True, "ack": 2}
    waha.get(f"{waha_url}/api/s1/chats/491701234567%40c.us/messages/true_491701234567%40c.us_3EB0AA", json=message)

    assert waha_client.get_chat_message("s1", "491701234567@c.us", "true_491701234567@c.us_3EB0AA") == message
    assert parse_qs(urlsplit(last_request(waha).url).query) == {"downloadMedia": ["false"]}


def test_get_chat_message_returns_none_when_waha_does_not_have_it(waha, waha_client, waha_url):
    waha.get(
        re.compile(rf"{re.escape(waha_url)}/api/s1/chats/.*"),
        status=404,
        json={"message": "Message not found", "error": "Not Found", "statusCode": 404},
    )

    assert waha_client.get_chat_message("s1", "491701234567@c.us", "true_491701234567@c.us_3EB0AA") is None


def test_get_chat_message_raises_when_the_session_is_missing(waha, waha_client, waha_url):
    waha.get(
        re.compile(rf"{re.escape(waha_url)}/api/s1/chats/.*"),
        status=422,
        json={"error": 'Session "s1" does not exist', "session": "s1"},
    )

    with pytest.raises(errors.WahaNotFound):
        waha_client.get_chat_message("s1", "491701234567@c.us", "true_491701234567@c.us_3EB0AA")
