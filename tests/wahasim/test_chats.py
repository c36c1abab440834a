"""Chats, contacts and actions on messages in the simulator: the WAHA endpoints, the events they cause, and the
customer's side (control hooks)."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import wait_for as wait_until

CHAT = "491709999999@c.us"
OTHER = "491701111111@c.us"


def control(server, path, json=None, method="POST"):
    return requests.request(method, server.url + "/_sim" + path, json=json, timeout=5)


def send(api, text="Hallo", chat=CHAT, **body) -> str:
    response = api("POST", "/api/sendText", json={"session": "default", "chatId": chat, "text": text, **body})
    assert response.status_code == 201, response.text
    return response.json()["id"] if isinstance(response.json()["id"], str) else response.json()["id"]["_serialized"]


def events(server, name):
    return [e["payload"] for e in server.events() if e["event"] == name]


def message_path(message_id, chat=CHAT):
    return f"/api/default/chats/{chat}/messages/{message_id}"


@pytest.fixture
def working(api):
    api.working("default")
    return api


# ---------------------------------------------------------------- deleting a chat


def test_delete_chat_removes_its_messages_and_is_recorded(working, server):
    server.inbound("default", from_=CHAT, text="mine")
    server.inbound("default", from_=OTHER, text="theirs")

    response = working("DELETE", f"/api/default/chats/{CHAT}")

    assert response.status_code == 200
    assert [d["chatId"] for d in server.deleted_chats("default")] == [CHAT]
    overview = working("GET", "/api/default/chats/overview").json()
    assert [c["id"] for c in overview] == [OTHER]


# ---------------------------------------------------------------- read receipts


def test_read_marks_the_chats_unread_incoming_messages_and_records_it(working, server):
    first = server.inbound("default", from_=CHAT, text="one")
    second = server.inbound("default", from_=CHAT, text="two")
    elsewhere = server.inbound("default", from_=OTHER, text="other chat")

    response = working("POST", f"/api/default/chats/{CHAT}/messages/read")

    assert (response.status_code, response.json()) == (201, {"ids": [second, first]})
    assert [(r["chatId"], r["ids"]) for r in server.read_receipts("default")] == [(CHAT, [second, first])]
    again = working("POST", f"/api/default/chats/{CHAT}/messages/read").json()
    assert again == {"ids": []}
    assert working("POST", f"/api/default/chats/{OTHER}/messages/read").json() == {"ids": [elsewhere]}


def test_read_takes_the_newest_n_messages(working, server):
    server.inbound("default", from_=CHAT, text="old")
    newest = server.inbound("default", from_=CHAT, text="new")

    response = working("POST", f"/api/default/chats/{CHAT}/messages/read", params={"messages": 1})

    assert response.json() == {"ids": [newest]}


def test_read_with_a_bad_number_answers_400(working):
    response = working("POST", f"/api/default/chats/{CHAT}/messages/read", params={"days": "soon"})

    assert response.status_code == 400
    assert isinstance(response.json()["message"], list)


def test_send_seen_without_ids_reads_the_chat(working, server):
    message = server.inbound("default", from_=CHAT, text="hi")

    working("POST", "/api/sendSeen", json={"session": "default", "chatId": CHAT})

    assert server.read_receipts("default")[-1]["ids"] == [message]


def test_read_needs_a_working_session(api):
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")

    response = api("POST", f"/api/default/chats/{CHAT}/messages/read")

    assert response.status_code == 422
    assert response.json()["expected"] == ["WORKING"]


# ---------------------------------------------------------------- reactions, edits, deletes, forwards


def test_own_reaction_emits_message_reaction_from_me(working, server):
    message = server.inbound("default", from_=CHAT, text="hi")

    response = working("PUT", "/api/reaction", json={"session": "default", "messageId": message, "reaction": "👍"})
    working("PUT", "/api/reaction", json={"session": "default", "messageId": message, "reaction": ""})

    assert response.status_code == 200
    reactions = events(server, "message.reaction")
    assert [(r["fromMe"], r["source"], r["reaction"]) for r in reactions] == [
        (True, "api", {"text": "👍", "messageId": message}),
        (True, "api", {"text": "", "messageId": message}),
    ]
    assert reactions[0]["id"].startswith(f"true_{CHAT}_")


@pytest.mark.parametrize(
    ("engine", "keys"), [("GOWS", ["id", "_data"]), ("NOWEB", ["key", "message", "messageTimestamp", "status"])]
)
def test_reaction_answer_has_the_engine_shape(make_api, engine, keys):
    api = make_api(engine=engine)
    api.working("default")
    message = api.server.inbound("default", from_=CHAT, text="hi")

    response = api("PUT", "/api/reaction", json={"session": "default", "messageId": message, "reaction": "🎉"})

    assert list(response.json()) == keys


def test_reaction_on_webjs_answers_an_empty_body(make_api):
    api = make_api(engine="WEBJS")
    api.working("default")
    message = api.server.inbound("default", from_=CHAT, text="hi")

    response = api("PUT", "/api/reaction", json={"session": "default", "messageId": message, "reaction": "🎉"})

    assert (response.status_code, response.content) == (200, b"")


def test_reaction_without_message_id_answers_500_shape(working):
    response = working("PUT", "/api/reaction", json={"session": "default", "reaction": "👍"})

    assert response.status_code == 500
    assert response.json()["exception"]["message"] == "messageId is required"


def test_edit_of_own_message_changes_it_and_emits_message_edited(working, server):
    sent = send(working, "Helo")

    response = working("PUT", message_path(sent), json={"text": "Hello"})

    assert response.status_code == 200
    [edited] = events(server, "message.edited")
    assert (edited["body"], edited["fromMe"], edited["editedMessageId"]) == ("Hello", True, sent.rsplit("_", 1)[1])
    assert edited["id"] != sent
    assert working("GET", message_path(sent)).json()["body"] == "Hello"


def test_edit_of_a_customers_message_changes_nothing(working, server):
    message = server.inbound("default", from_=CHAT, text="theirs")

    assert working("PUT", message_path(message), json={"text": "mine now"}).status_code == 200

    assert events(server, "message.edited") == []
    assert working("GET", message_path(message)).json()["body"] == "theirs"


def test_edit_without_text_answers_400(working):
    sent = send(working)

    response = working("PUT", message_path(sent), json={"body": "x"})

    assert (response.status_code, response.json()["message"]) == (400, ["text must be a string"])


@pytest.mark.parametrize(("engine", "before"), [("GOWS", False), ("WEBJS", True)])
def test_delete_of_own_message_emits_message_revoked(make_api, engine, before):
    api = make_api(engine=engine)
    api.working("default")
    sent = send(api, "oops")

    response = api("DELETE", message_path(sent))

    assert response.status_code == 200
    [revoked] = events(api.server, "message.revoked")
    assert revoked["revokedMessageId"] == sent.rsplit("_", 1)[1]
    assert revoked["after"]["fromMe"] is True
    assert (revoked["before"] is not None) == before
    if before:
        assert (revoked["before"]["id"], revoked["before"]["body"]) == (sent, "oops")


def test_forward_sends_a_copy_to_the_other_chat(working, server):
    original = server.inbound("default", from_=CHAT, text="pass it on")

    response = working(
        "POST", "/api/forwardMessage", json={"session": "default", "chatId": OTHER, "messageId": original, "id": "F1"}
    )
    again = working(
        "POST", "/api/forwardMessage", json={"session": "default", "chatId": OTHER, "messageId": original, "id": "F1"}
    )

    assert (response.status_code, response.json()["id"]) == (201, f"true_{OTHER}_F1")
    assert again.json() == response.json()
    assert [(m["chatId"], m["body"]) for m in server.sent_messages("default")] == [(OTHER, "pass it on")]
    wait_until(lambda: any(a["id"] == f"true_{OTHER}_F1" and a["ack"] == 3 for a in events(server, "message.ack")))


def test_forward_of_an_unknown_message_answers_404(working):
    body = {"session": "default", "chatId": OTHER, "messageId": f"false_{CHAT}_NOPE"}

    response = working("POST", "/api/forwardMessage", json=body)

    assert response.status_code == 404
    assert response.json() == {"message": "Message not found", "error": "Not Found", "statusCode": 404}


def test_typing_is_recorded_and_not_echoed(working, server):
    working("POST", "/api/startTyping", json={"session": "default", "chatId": CHAT})
    working("POST", "/api/stopTyping", json={"session": "default", "chatId": CHAT})

    assert [(t["chatId"], t["state"]) for t in server.typing_log("default")] == [(CHAT, "typing"), (CHAT, "paused")]
    assert events(server, "presence.update") == []


# ---------------------------------------------------------------- contacts, pictures, LIDs, chats


def test_contacts_list_what_the_phone_knows(working, server):
    server.inbound("default", from_=CHAT, text="hi")
    send(working, "hello", chat=OTHER)
    server.set_contact("default", OTHER, saved_name="Bert Builder")

    contacts = working("GET", "/api/contacts/all", params={"session": "default", "sortBy": "name"}).json()

    assert contacts == [
        {"id": OTHER, "name": "Bert Builder", "pushname": None},
        {"id": CHAT, "name": None, "pushname": "Sim Contact"},
    ]


def test_contacts_page_by_limit_and_offset(working, server):
    for n in range(3):
        server.set_contact("default", f"49170000000{n + 1}", push_name=f"P{n}")

    page = working("GET", "/api/contacts/all", params={"session": "default", "limit": 1, "offset": 1}).json()

    assert [c["id"] for c in page] == ["491700000002@c.us"]


def test_webjs_contact_carries_its_flags(make_api):
    api = make_api(engine="WEBJS")
    api.working("default")
    api.server.set_contact("default", CHAT, saved_name="Anna Meyer")

    contact = api("GET", "/api/contacts", params={"session": "default", "contactId": CHAT}).json()

    assert (contact["name"], contact["shortName"], contact["number"], contact["isMyContact"]) == (
        "Anna Meyer",
        "Anna",
        "491709999999",
        True,
    )


def test_unknown_contact_still_answers(working):
    contact = working("GET", "/api/contacts", params={"session": "default", "contactId": "4915550001111"}).json()

    assert contact == {"id": "4915550001111@c.us", "name": None, "pushname": None}


def test_contact_without_contact_id_answers_400(working):
    assert working("GET", "/api/contacts", params={"session": "default"}).status_code == 400


def test_profile_picture_is_served_by_the_simulator(working, server):
    server.set_contact("default", CHAT, picture=True)

    url = working("GET", "/api/contacts/profile-picture", params={"session": "default", "contactId": CHAT}).json()[
        "profilePictureURL"
    ]
    image = requests.get(url, timeout=5)

    assert url.startswith(server.url + "/_sim/pictures/")
    assert (image.status_code, image.headers["Content-Type"], image.content[:4]) == (200, "image/png", b"\x89PNG")


def test_hidden_profile_picture_is_null(working, server):
    server.set_contact("default", CHAT, picture=True)
    server.set_contact("default", CHAT, picture=False)

    body = working("GET", "/api/contacts/profile-picture", params={"session": "default", "contactId": CHAT}).json()

    assert body == {"profilePictureURL": None}


@pytest.mark.parametrize("lid", ["123456789012345@lid", "123456789012345"])
def test_lid_maps_to_the_phone_chat(working, server, lid):
    server.set_contact("default", CHAT, lid="123456789012345@lid")

    assert working("GET", f"/api/default/lids/{lid}").json() == {"lid": "123456789012345@lid", "pn": CHAT}


def test_unknown_lid_has_no_phone(working):
    assert working("GET", "/api/default/lids/999@lid").json() == {"lid": "999@lid", "pn": None}


def test_lookup_of_a_phone_id_as_lid_answers_422(working):
    response = working("GET", f"/api/default/lids/{CHAT}")

    assert response.status_code == 422
    assert response.json()["message"] == "Invalid LID - it must end with @lid"


def test_chats_overview_is_newest_first_with_names_and_pictures(working, server):
    server.inbound("default", from_=CHAT, text="first")
    last = send(working, "latest", chat=OTHER)
    server.set_contact("default", OTHER, saved_name="Bert", picture=True)

    chats = working("GET", "/api/default/chats/overview").json()

    assert [(c["id"], c["name"], c["lastMessage"]["body"]) for c in chats] == [
        (OTHER, "Bert", "latest"),
        (CHAT, "Sim Contact", "first"),
    ]
    assert chats[0]["lastMessage"]["id"] == last
    assert chats[0]["picture"].startswith(server.url) and chats[1]["picture"] is None
    filtered = working("GET", "/api/default/chats/overview", params={"ids": CHAT}).json()
    assert [c["id"] for c in filtered] == [CHAT]
    assert [c["id"] for c in working("GET", "/api/default/chats/overview", params={"offset": 1}).json()] == [CHAT]


def test_contacts_need_a_working_session(api):
    api.create("default", start=False)

    response = api("GET", "/api/contacts/all", params={"session": "default"})

    assert (response.status_code, response.json()["status"]) == (422, "STOPPED")


# ---------------------------------------------------------------- the customer's side


def test_customer_reaction_is_not_from_me(working, server):
    sent = send(working)

    response = control(server, "/sessions/default/react", {"id": sent, "emoji": "❤️"})

    assert response.status_code == 201
    [reaction] = events(server, "message.reaction")
    assert (reaction["fromMe"], reaction["from"], reaction["reaction"]) == (
        False,
        CHAT,
        {"text": "❤️", "messageId": sent},
    )
    assert reaction["id"] == response.json()["id"]


def test_customer_edit_and_revoke_their_message(working, server):
    message = server.inbound("default", from_=CHAT, text="typo")

    control(server, "/sessions/default/edit", {"id": message, "text": "fixed"})
    control(server, "/sessions/default/revoke", {"id": message})

    [edited] = events(server, "message.edited")
    [revoked] = events(server, "message.revoked")
    assert (edited["body"], edited["fromMe"], edited["editedMessageId"]) == ("fixed", False, message.rsplit("_")[-1])
    assert (revoked["revokedMessageId"], revoked["after"]["fromMe"]) == (message.rsplit("_")[-1], False)


@pytest.mark.parametrize("action", ["edit", "revoke"])
def test_customer_cannot_change_our_messages(working, server, action):
    sent = send(working)

    response = control(server, f"/sessions/default/{action}", {"id": sent, "text": "x"})

    assert response.status_code == 409


def test_customer_action_on_unknown_message_answers_404(working, server):
    assert control(server, "/sessions/default/react", {"id": f"true_{CHAT}_NOPE", "emoji": "👍"}).status_code == 404


def test_customer_reading_the_chat_sends_read_acks(make_api):
    api = make_api(auto_read=False)
    api.working("default")
    sent = send(api, "see this?")
    wait_until(lambda: any(a["id"] == sent and a["ack"] == 2 for a in events(api.server, "message.ack")))

    response = control(api.server, "/sessions/default/read", {"chatId": CHAT})

    assert response.json() == {"read": [sent]}
    acks = [(a["ack"], a["ackName"]) for a in events(api.server, "message.ack") if a["id"] == sent]
    assert acks == [(1, "SERVER"), (2, "DEVICE"), (3, "READ")]
    assert control(api.server, "/sessions/default/read", {"chatId": CHAT}).json() == {"read": []}


def test_auto_read_can_be_switched_off_at_run_time(working, server):
    control(server, "/auto-read", {"on": False})
    sent = send(working)
    wait_until(lambda: any(a["id"] == sent and a["ack"] == 2 for a in events(server, "message.ack")))

    assert max(a["ack"] for a in events(server, "message.ack") if a["id"] == sent) == 2
    server.reset()
    assert server.simulator.auto_read is True


def test_customer_typing_emits_presence_update(working, server):
    response = control(server, "/sessions/default/typing", {"chatId": "491709999999", "state": "typing"})

    assert response.status_code == 200
    assert events(server, "presence.update") == [
        {"id": CHAT, "presences": [{"participant": CHAT, "lastKnownPresence": "typing", "lastSeen": None}]}
    ]


def test_customer_typing_with_unknown_state_answers_400(working, server):
    assert control(server, "/sessions/default/typing", {"chatId": CHAT, "state": "dancing"}).status_code == 400


def test_contact_endpoint_sets_and_clears_fields(working, server):
    set_ = control(server, "/sessions/default/contacts", {"id": CHAT, "name": "Anna", "pushName": "Anni", "lid": "77"})
    cleared = control(server, "/sessions/default/contacts", {"id": CHAT, "name": None})

    assert set_.json() == {"id": CHAT, "name": "Anna", "pushname": "Anni", "picture": None, "lid": "77@lid"}
    assert cleared.json()["name"] is None and cleared.json()["pushname"] == "Anni"
    assert control(server, "/sessions/default/contacts", method="GET").json()[CHAT]["lid"] == "77@lid"


def test_inbound_messages_carry_the_contacts_push_name(working, server):
    server.set_contact("default", CHAT, push_name="Anni")

    server.inbound("default", from_=CHAT, text="hi")

    [message] = events(server, "message")
    assert message["_data"]["Info"]["PushName"] == "Anni"


def test_reads_and_typing_are_readable_over_http(working, server):
    server.inbound("default", from_=CHAT, text="hi")
    working("POST", f"/api/default/chats/{CHAT}/messages/read")
    working("POST", "/api/startTyping", json={"session": "default", "chatId": CHAT})

    assert control(server, "/sessions/default/reads", method="GET").json()[0]["chatId"] == CHAT
    assert control(server, "/sessions/default/typing", method="GET").json()[0]["state"] == "typing"
