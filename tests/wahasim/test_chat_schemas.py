"""The chat, contact and message-action answers and the events they cause, validated against openapi.json.

The document is relaxed where CONTRACT.md says WAHA sends otherwise (see conftest._relaxed): nulls in message
payloads, `before: null` of GOWS revokes, `lastSeen: null` of chat presences, `pn: null` of unknown LIDs, and
envelope `event` names as strings. The contact endpoints have no response schema in the document; their shape
is WAHA's GOWS code (`{id, name, pushname}`).
"""

from __future__ import annotations

import pytest
import requests

CHAT = "491709999999@c.us"
OTHER = "491701111111@c.us"


def _prepared(api) -> dict:
    """A WORKING session with a contact, an incoming and a sent message."""
    api.working("default")
    server = api.server
    server.set_contact("default", CHAT, saved_name="Anna", push_name="Anni", picture=True, lid="123456789@lid")
    incoming = server.inbound("default", from_=CHAT, text="hi")
    api("POST", "/api/sendText", json={"session": "default", "chatId": CHAT, "text": "yo", "id": "S1"})
    return {"incoming": incoming, "sent": f"true_{CHAT}_S1"}


@pytest.mark.parametrize("engine", ["GOWS", "NOWEB", "WEBJS"])
def test_read_chat_matches_schema(make_api, schemas, engine):
    api = make_api(engine=engine)
    _prepared(api)
    body = api("POST", f"/api/default/chats/{CHAT}/messages/read").json()
    schemas.validate(body, schemas.response("/api/{session}/chats/{chatId}/messages/read", "post", "201"))


def test_reaction_answer_matches_schema(api, schemas):
    ids = _prepared(api)
    body = api("PUT", "/api/reaction", json={"session": "default", "messageId": ids["incoming"], "reaction": "👍"})
    schemas.validate(body.json(), schemas.response("/api/reaction", "put", "200"))


@pytest.mark.parametrize("engine", ["GOWS", "NOWEB", "WEBJS"])
def test_forward_answer_matches_relaxed_schema(make_api, schemas, engine):
    api = make_api(engine=engine)
    ids = _prepared(api)
    body = {"session": "default", "chatId": OTHER, "messageId": ids["incoming"]}
    response = api("POST", "/api/forwardMessage", json=body)
    assert response.status_code == 201
    schemas.validate(response.json(), schemas.send_answer())


@pytest.mark.parametrize("engine", ["GOWS", "NOWEB", "WEBJS"])
def test_chats_overview_matches_schema(make_api, schemas, engine):
    api = make_api(engine=engine)
    _prepared(api)
    body = api("GET", "/api/default/chats/overview").json()
    assert body
    schemas.validate(body, schemas.response("/api/{session}/chats/overview", "get", "200"))
    for chat in body:
        schemas.validate(chat["lastMessage"], schemas.component("WAMessage"))


@pytest.mark.parametrize("lid", ["123456789@lid", "555@lid"], ids=["known", "unknown"])
def test_lid_matches_schema(api, schemas, lid):
    _prepared(api)
    body = api("GET", f"/api/default/lids/{lid}").json()
    schemas.validate(body, schemas.response("/api/{session}/lids/{lid}", "get", "200"))


CONTACT = {
    "type": "object",
    "required": ["id", "name", "pushname"],
    "properties": {
        "id": {"type": "string", "pattern": "@(c\\.us|lid)$"},
        "name": {"type": ["string", "null"]},
        "pushname": {"type": ["string", "null"]},
    },
}


def test_contacts_match_wahas_contact_shape(api, schemas):
    _prepared(api)
    listed = api("GET", "/api/contacts/all", params={"session": "default"}).json()
    one = api("GET", "/api/contacts", params={"session": "default", "contactId": CHAT}).json()
    schemas.validate(listed, {"type": "array", "items": CONTACT})
    schemas.validate(one, CONTACT)
    assert one == {"id": CHAT, "name": "Anna", "pushname": "Anni"}


def test_profile_picture_answer_is_a_url_or_null(api, schemas):
    _prepared(api)
    body = api("GET", "/api/contacts/profile-picture", params={"session": "default", "contactId": CHAT}).json()
    schemas.validate(
        body,
        {
            "type": "object",
            "required": ["profilePictureURL"],
            "additionalProperties": False,
            "properties": {"profilePictureURL": {"type": ["string", "null"], "format": "uri"}},
        },
    )
    assert requests.get(body["profilePictureURL"], timeout=5).status_code == 200


@pytest.mark.parametrize("engine", ["GOWS", "NOWEB", "WEBJS"])
def test_action_events_match_the_webhook_schemas(make_api, schemas, engine):
    api = make_api(engine=engine, auto_read=False)
    ids = _prepared(api)
    server = api.server
    api("PUT", "/api/reaction", json={"session": "default", "messageId": ids["incoming"], "reaction": "👍"})
    api("PUT", f"/api/default/chats/{CHAT}/messages/{ids['sent']}", json={"text": "yo!"})
    server.customer_react("default", ids["sent"], "😂")
    server.customer_edit("default", ids["incoming"], "hello")
    server.customer_typing("default", CHAT)
    server.customer_read("default", CHAT)
    server.customer_revoke("default", ids["incoming"])
    api("DELETE", f"/api/default/chats/{CHAT}/messages/{ids['sent']}")
    wanted = {"message.reaction", "message.edited", "message.revoked", "presence.update", "message.ack"}
    seen = set()
    for envelope in server.events():
        if envelope["event"] in wanted:
            schemas.validate(envelope, schemas.event(envelope))
            seen.add(envelope["event"])
    assert seen == wanted
