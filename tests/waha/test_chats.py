"""The chat, contact and message-action calls send exactly what openapi.json describes, return what the portal
needs, and fail and retry by the client's rules (WAHA mocked with `responses`)."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from portal.waha import SendResult, errors

CHAT = "491709999999@c.us"
MSG = "true_491709999999@c.us_3EB0AABBCCDDEEFF0011"
WA_ID = re.compile(r"3EB0[0-9A-F]{16}")
UNAVAILABLE = {"message": "Service Unavailable", "error": "Service Unavailable", "statusCode": 503}
NOT_WORKING = {
    "error": "Session status is not as expected. Try again later or restart the session",
    "session": "s1",
    "status": "SCAN_QR_CODE",
    "expected": ["WORKING"],
}


def last(waha):
    return waha.calls[-1].request


def body_of(request) -> dict:
    return json.loads(request.body)


def query_of(request) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}


def path_of(request) -> str:
    return urlsplit(request.url).path


# ---------------------------------------------------------------- message actions


def test_read_chat_posts_to_the_chats_read_path(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/s1/chats/{CHAT.replace('@', '%40')}/messages/read", status=201, json={"ids": ["x"]})

    assert waha_client.read_chat("s1", CHAT) is None

    request = last(waha)
    assert (request.method, request.body, query_of(request)) == ("POST", None, {})


def test_read_chat_turns_a_phone_number_into_the_chat_id(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/s1/chats/491709999999%40c.us/messages/read", status=201, json={"ids": []})

    waha_client.read_chat("s1", "+49 170 9999999")

    assert path_of(last(waha)) == "/api/s1/chats/491709999999%40c.us/messages/read"


@pytest.mark.parametrize("emoji", ["👍", ""], ids=["react", "remove"])
def test_react_puts_session_message_and_reaction(waha, waha_client, waha_url, emoji):
    waha.put(f"{waha_url}/api/reaction", json={"id": "true_491709999999@c.us_R1", "_data": {}})

    assert waha_client.react("s1", MSG, emoji) is None

    assert body_of(last(waha)) == {"session": "s1", "messageId": MSG, "reaction": emoji}


def test_react_accepts_an_empty_answer(waha, waha_client, waha_url):
    # WEBJS answers the reaction with no body at all.
    waha.put(f"{waha_url}/api/reaction", body="")

    waha_client.react("s1", MSG, "🎉")


def test_edit_message_puts_the_new_text_to_the_message_path(waha, waha_client, waha_url):
    waha.put(f"{waha_url}/api/s1/chats/491709999999%40c.us/messages/{MSG.replace('@', '%40')}", json={})

    assert waha_client.edit_message("s1", CHAT, MSG, "Fixed typo") is None

    request = last(waha)
    assert (request.method, body_of(request)) == ("PUT", {"text": "Fixed typo"})


def test_delete_message_sends_delete_to_the_message_path(waha, waha_client, waha_url):
    waha.delete(f"{waha_url}/api/s1/chats/491709999999%40c.us/messages/{MSG.replace('@', '%40')}", body="")

    assert waha_client.delete_message("s1", CHAT, MSG) is None

    assert last(waha).method == "DELETE"


@pytest.mark.parametrize(
    "fixture", ["send-text.response.gows.json", "send-text.response.noweb.json", "send-text.response.webjs.json"]
)
def test_forward_message_posts_body_and_normalises_every_engine(waha, waha_client, waha_url, load_fixture, fixture):
    waha.post(f"{waha_url}/api/forwardMessage", status=201, json=load_fixture(fixture))

    result = waha_client.forward_message(
        "default", "4915112345678@c.us", "false_491709999999@c.us_AAAA", new_message_id="3EB0AABBCCDDEEFF0011"
    )

    assert body_of(last(waha)) == {
        "session": "default",
        "chatId": "4915112345678@c.us",
        "messageId": "false_491709999999@c.us_AAAA",
        "id": "3EB0AABBCCDDEEFF0011",
    }
    assert result.message_id == "true_4915112345678@c.us_3EB0AABBCCDDEEFF0011"


def test_forward_message_generates_the_new_id_and_predicts_it_from_an_empty_answer(waha, waha_client, waha_url):
    waha.post(f"{waha_url}/api/forwardMessage", status=201, body="")

    result = waha_client.forward_message("s1", "+49 151 12345678", MSG)

    sent = body_of(last(waha))
    assert WA_ID.fullmatch(sent["id"])
    assert sent["chatId"] == "4915112345678@c.us"
    assert result == SendResult(f"true_4915112345678@c.us_{sent['id']}", {})


@pytest.mark.parametrize("action", ["start", "stop"])
def test_typing_posts_session_and_chat(waha, waha_client, waha_url, action):
    waha.post(f"{waha_url}/api/{action}Typing", status=201, json={"result": True})

    assert getattr(waha_client, f"{action}_typing")("s1", CHAT) is None

    assert body_of(last(waha)) == {"session": "s1", "chatId": CHAT}


# ---------------------------------------------------------------- contacts and chats


def test_list_contacts_pages_by_limit_and_offset(waha, waha_client, waha_url):
    contacts = [{"id": CHAT, "name": "Anna", "pushname": "Anni"}, {"id": "491701111111@c.us", "name": None}]
    waha.get(f"{waha_url}/api/contacts/all", json=contacts)

    assert waha_client.list_contacts("s1", limit=2, offset=4) == contacts

    assert query_of(last(waha)) == {"session": "s1", "limit": "2", "offset": "4"}


def test_list_contacts_ignores_an_answer_that_is_not_a_list(waha, waha_client, waha_url):
    waha.get(f"{waha_url}/api/contacts/all", json={"unexpected": True})

    assert waha_client.list_contacts("s1") == []


def test_get_contact_asks_by_contact_id_and_session(waha, waha_client, waha_url):
    contact = {"id": CHAT, "name": "Anna", "pushname": "Anni"}
    waha.get(f"{waha_url}/api/contacts", json=contact)

    assert waha_client.get_contact("s1", "+49 170 9999999") == contact

    assert query_of(last(waha)) == {"contactId": CHAT, "session": "s1"}


def test_get_contact_empty_answer_is_none(waha, waha_client, waha_url):
    waha.get(f"{waha_url}/api/contacts", body="")

    assert waha_client.get_contact("s1", CHAT) is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"profilePictureURL": "https://pps.whatsapp.net/v/t61/a.jpg"}, "https://pps.whatsapp.net/v/t61/a.jpg"),
        ({"profilePictureURL": None}, None),
        ({"url": "https://pps.whatsapp.net/v/t61/b.jpg"}, "https://pps.whatsapp.net/v/t61/b.jpg"),
    ],
    ids=["url", "hidden", "older-shape"],
)
def test_get_profile_picture_url(waha, waha_client, waha_url, answer, expected):
    waha.get(f"{waha_url}/api/contacts/profile-picture", json=answer)

    assert waha_client.get_profile_picture_url("s1", CHAT) == expected

    assert query_of(last(waha)) == {"contactId": CHAT, "session": "s1"}


@pytest.mark.parametrize("lid", ["123456789012345@lid", "123456789012345"])
def test_get_lid_phone_escapes_the_lid_in_the_path(waha, waha_client, waha_url, lid):
    waha.get(f"{waha_url}/api/s1/lids/123456789012345%40lid", json={"lid": "123456789012345@lid", "pn": CHAT})

    assert waha_client.get_lid_phone("s1", lid) == CHAT

    assert path_of(last(waha)) == "/api/s1/lids/123456789012345%40lid"


def test_get_lid_phone_unknown_lid_is_none(waha, waha_client, waha_url):
    waha.get(f"{waha_url}/api/s1/lids/1%40lid", json={"lid": "1@lid", "pn": None})

    assert waha_client.get_lid_phone("s1", "1@lid") is None


def test_list_chats_overview_pages_by_limit_and_offset(waha, waha_client, waha_url):
    chats = [{"id": CHAT, "name": "Anna", "picture": None, "lastMessage": {"id": MSG}, "_chat": {}}]
    waha.get(f"{waha_url}/api/s1/chats/overview", json=chats)

    assert waha_client.list_chats_overview("s1", limit=20, offset=40) == chats

    assert query_of(last(waha)) == {"limit": "20", "offset": "40"}


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "method", "path"),
    [
        (lambda c: c.get_contact("s1", CHAT), "GET", "/api/contacts"),
        (lambda c: c.list_chats_overview("s1"), "GET", "/api/s1/chats/overview"),
        (lambda c: c.edit_message("s1", CHAT, MSG, "x"), "PUT", f"/api/s1/chats/491709999999%40c.us/messages/{MSG}"),
        (lambda c: c.get_lid_phone("s1", "1@lid"), "GET", "/api/s1/lids/1%40lid"),
    ],
    ids=["contact", "overview", "edit", "lid"],
)
def test_404_is_not_found(waha, waha_client, waha_url, call, method, path):
    waha.add(
        method, waha_url + path.replace("@", "%40"), status=404, json={"message": "Cannot GET x", "statusCode": 404}
    )

    with pytest.raises(errors.WahaNotFound):
        call(waha_client)

    assert len(waha.calls) == 1


def test_session_not_working_is_session_not_ready(waha, waha_client, waha_url):
    waha.put(f"{waha_url}/api/reaction", status=422, json=NOT_WORKING)

    with pytest.raises(errors.WahaSessionNotReady) as caught:
        waha_client.react("s1", MSG, "👍")

    assert (caught.value.session_status, caught.value.expected) == ("SCAN_QR_CODE", ["WORKING"])


def test_engine_without_forward_is_not_implemented(waha, waha_client, waha_url):
    body = {"message": "The method is not implemented by 'GOWS' engine.", "error": "Not Implemented", "statusCode": 501}
    waha.post(f"{waha_url}/api/forwardMessage", status=501, json=body)

    with pytest.raises(errors.WahaNotImplemented):
        waha_client.forward_message("s1", CHAT, MSG)


@pytest.mark.parametrize(
    ("call", "method", "path"),
    [
        (lambda c: c.read_chat("s1", CHAT), "POST", "/api/s1/chats/491709999999%40c.us/messages/read"),
        (lambda c: c.react("s1", MSG, "👍"), "PUT", "/api/reaction"),
        (lambda c: c.delete_message("s1", CHAT, MSG), "DELETE", f"/api/s1/chats/491709999999%40c.us/messages/{MSG}"),
        (lambda c: c.start_typing("s1", CHAT), "POST", "/api/startTyping"),
        (lambda c: c.list_contacts("s1"), "GET", "/api/contacts/all"),
        (lambda c: c.get_profile_picture_url("s1", CHAT), "GET", "/api/contacts/profile-picture"),
    ],
    ids=["read", "react", "delete", "typing", "contacts", "picture"],
)
def test_repeatable_calls_are_retried_after_503(waha, waha_client, waha_url, call, method, path):
    url = waha_url + path.replace("_491709999999@", "_491709999999%40")
    waha.add(method, url, status=503, json=UNAVAILABLE)
    waha.add(method, url, status=200, json={})

    call(waha_client)

    assert len(waha.calls) == 2


@pytest.mark.parametrize("status", [502, 503, 504])
def test_forward_is_not_retried_after_a_gateway_error(waha, waha_client, waha_url, status):
    waha.post(f"{waha_url}/api/forwardMessage", status=status, json=UNAVAILABLE)

    with pytest.raises(errors.WahaUnavailable):
        waha_client.forward_message("s1", CHAT, MSG)

    assert len(waha.calls) == 1


def test_forward_is_retried_when_no_connection_could_be_opened(waha, waha_client, waha_url):
    refused = requests.ConnectionError(MaxRetryError(None, waha_url, NewConnectionError(None, "refused")))
    waha.post(f"{waha_url}/api/forwardMessage", body=refused)
    waha.post(f"{waha_url}/api/forwardMessage", status=201, json={"id": "true_491709999999@c.us_F1"})

    assert waha_client.forward_message("s1", CHAT, MSG).message_id == "true_491709999999@c.us_F1"
    assert len(waha.calls) == 2


def test_delete_chat_deletes_the_chats_path(waha, waha_client, waha_url):
    waha.delete(f"{waha_url}/api/s1/chats/491709999999%40c.us", status=200, body="")

    assert waha_client.delete_chat("s1", "+49 170 9999999") is None

    request = last(waha)
    assert (request.method, path_of(request), request.body) == ("DELETE", "/api/s1/chats/491709999999%40c.us", None)


def test_delete_chat_of_a_session_waha_does_not_have_is_not_found(waha, waha_client, waha_url):
    waha.delete(f"{waha_url}/api/s1/chats/{CHAT.replace('@', '%40')}", status=404, json={"message": "Not Found"})

    with pytest.raises(errors.WahaNotFound):
        waha_client.delete_chat("s1", CHAT)
