"""The inbox over the API: chats listed from processed events, filters and pages, assignment, resolve, read,
notes, contacts and the check-exists cache, quick replies. Every answer is checked against the OpenAPI document
(`Api`); events go through the real receiver and processing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Chat, WahaSession
from portal.services import events, quick_replies
from tests.builders import create_session, envelope, inbound_payload, make_token, member, post_events
from tests.helpers import Api

SENDER = "491709999999"
CHAT = f"{SENDER}@c.us"
NOT_ON_WHATSAPP = "+49 170 0000000"  # the simulator knows no number with a run of seven zeros


@pytest.fixture
def inbound(client: Any) -> Any:
    """Deliver an inbound WhatsApp message of `sender` to a session (as WAHA would) and process it."""

    def deliver(session: dict[str, Any], text: str = "hello", *, sender: str = SENDER, name: str | None = None) -> None:
        row = db.session.get(WahaSession, session["id"])
        payload = inbound_payload(text, sender=sender)
        if name:
            payload["_data"] = {"notifyName": name}
        assert post_events(client, row, envelope(row, "message", payload)).status_code == 200
        events.drain()
        db.session.expire_all()

    return deliver


def _chats(api: Api, path: str = "/waha/chats") -> list[dict[str, Any]]:
    response = api.get(path)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def _patch(api: Api, session: dict[str, Any], body: Any, chat: str = CHAT) -> Any:
    return api.call("PATCH", f"/waha/sessions/{session['id']}/chats/{chat}", json=body)


def _actions(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# ---- the list -------------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_inbound_message_lists_its_chat_with_name_preview_and_unread_count(api, session, inbound):
    inbound(session, "Where is my order?", name="Ada Lovelace")

    [chat] = _chats(api)

    assert (chat["sessionId"], chat["chatId"], chat["name"]) == (session["id"], CHAT, "Ada Lovelace")
    assert chat["unreadCount"] == 1 and chat["status"] == "open" and chat["assigneeId"] is None
    last = chat["lastMessage"]
    assert (last["text"], last["kind"], last["fromMe"]) == ("Where is my order?", "text", False)
    assert chat["avatarUrl"] is None


def test_chat_without_a_name_shows_the_formatted_number(api, session, inbound):
    inbound(session)

    assert _chats(api)[0]["name"] == "+49 170 9999999"


def test_chats_come_newest_activity_first_in_pages(api, session, inbound):
    for n in range(3):
        inbound(session, f"message {n}", sender=f"49170111111{n}")

    first = api.get("/waha/chats?limit=2").get_json()
    second = api.get(f"/waha/chats?limit=2&cursor={first['nextCursor']}").get_json()

    assert [c["chatId"] for c in first["data"]] == ["491701111112@c.us", "491701111111@c.us"]
    assert [c["chatId"] for c in second["data"]] == ["491701111110@c.us"] and second["nextCursor"] is None


def test_a_new_message_moves_its_chat_to_the_top(api, session, inbound):
    inbound(session, "first", sender="491701111110")
    inbound(session, "second", sender="491701111111")
    inbound(session, "again", sender="491701111110")

    chats = _chats(api)

    assert [c["chatId"] for c in chats] == ["491701111110@c.us", "491701111111@c.us"]
    assert chats[0]["unreadCount"] == 2 and chats[0]["lastMessage"]["text"] == "again"


def test_session_chats_list_only_that_sessions_chats(api, session, inbound):
    other = create_session(api, "second")
    inbound(session, sender="491701111110")
    inbound(other, sender="491701111111")

    assert [c["chatId"] for c in _chats(api, f"/waha/sessions/{other['id']}/chats")] == ["491701111111@c.us"]
    assert [c["chatId"] for c in _chats(api, f"/waha/chats?sessionId={session['id']}")] == ["491701111110@c.us"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("unread=true", ["491701111111@c.us"]),
        ("unread=false", ["491701111110@c.us"]),
        ("q=Grace", ["491701111111@c.us"]),
        ("q=170%201111110", ["491701111110@c.us"]),
        ("status=resolved", ["491701111110@c.us"]),
        ("status=open", ["491701111111@c.us"]),
        ("assignee=none", ["491701111111@c.us"]),
    ],
)
def test_chat_filters(api, session, inbound, tenant, query, expected):
    owner = member(tenant, "operator")
    inbound(session, sender="491701111110", name="Ada")
    inbound(session, sender="491701111111", name="Grace")
    api.post(f"/waha/sessions/{session['id']}/chats/491701111110@c.us/read")
    _patch(api, session, {"status": "resolved", "assigneeId": owner.id}, "491701111110@c.us")

    assert [c["chatId"] for c in _chats(api, f"/waha/chats?{query}")] == expected


def test_assignee_me_is_the_member_who_created_the_token(client, api, session, inbound, tenant):
    operator = member(tenant, "operator")
    mine = Api(client, make_token(tenant, created_by_id=operator.id))
    inbound(session, sender="491701111110")
    inbound(session, sender="491701111111")
    _patch(api, session, {"assigneeId": operator.id}, "491701111111@c.us")

    assert [c["chatId"] for c in _chats(mine, "/waha/chats?assignee=me")] == ["491701111111@c.us"]
    assert [c["chatId"] for c in _chats(api, f"/waha/chats?assignee={operator.id}")] == ["491701111111@c.us"]


def test_assignee_me_without_a_member_behind_the_token_lists_nothing(api, session, inbound, tenant):
    inbound(session)
    _patch(api, session, {"assigneeId": member(tenant, "operator").id})

    assert _chats(api, "/waha/chats?assignee=me") == []


@pytest.mark.parametrize("assignee", ["0", "4964392081", "9999999999"])
def test_assignee_no_user_can_be_lists_nothing(api, session, inbound, tenant, assignee):
    inbound(session)
    _patch(api, session, {"assigneeId": member(tenant, "operator").id})

    assert _chats(api, f"/waha/chats?assignee={assignee}") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [("assignee=someone", "assignee"), ("status=closed", "status"), ("unread=maybe", "unread"), ("limit=0", "limit")],
)
def test_bad_chat_filters_are_400_naming_the_field(api, query, field):
    response = api.get(f"/waha/chats?{query}")

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and [f["field"] for f in error["details"]["fields"]] == [field]


# ---- acting on a chat -----------------------------------------------------------------------------------------


def test_assign_to_a_member_is_audited(api, session, inbound, tenant):
    operator = member(tenant, "operator")
    inbound(session)

    response = _patch(api, session, {"assigneeId": operator.id})

    assert response.status_code == 200 and response.get_json()["assigneeId"] == operator.id
    [event] = _actions("chat.assign")
    assert event.details["to"] == operator.id and event.target_id == str(response.get_json()["id"])


def test_assign_to_someone_outside_the_tenant_is_404_and_changes_nothing(api, session, inbound, other_tenant):
    stranger = member(other_tenant, "owner")
    inbound(session)

    response = _patch(api, session, {"assigneeId": stranger.id})

    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "member_not_found" and error["details"]["fields"][0]["field"] == "assigneeId"
    assert db.session.scalar(select(Chat.assignee_id)) is None and _actions("chat.assign") == []


def test_assign_needs_chats_manage_but_resolve_does_not(client, session, inbound, tenant):
    sender_only = Api(client, make_token(tenant, ["messages:read", "messages:send"]))
    operator = member(tenant, "operator")
    inbound(session)

    refused = _patch(sender_only, session, {"assigneeId": operator.id})
    resolved = _patch(sender_only, session, {"status": "resolved"})

    assert refused.status_code == 403 and refused.get_json()["error"]["details"]["required"] == "chats:manage"
    assert resolved.status_code == 200 and resolved.get_json()["status"] == "resolved"
    assert [e.details["permission"] for e in _actions("auth.api_forbidden")] == ["chats:manage"]


def test_unassign_with_null(api, session, inbound, tenant):
    operator = member(tenant, "operator")
    inbound(session)
    _patch(api, session, {"assigneeId": operator.id})

    response = _patch(api, session, {"assigneeId": None})

    assert response.status_code == 200 and response.get_json()["assigneeId"] is None
    assert len(_actions("chat.unassign")) == 1


def test_resolve_then_a_new_message_reopens_the_chat(api, session, inbound):
    inbound(session)
    resolved = _patch(api, session, {"status": "resolved"})
    inbound(session, "one more thing")

    [chat] = _chats(api)

    assert resolved.get_json()["status"] == "resolved" and len(_actions("chat.resolve")) == 1
    assert chat["status"] == "open" and chat["unreadCount"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "body"), ({"status": "closed"}, "status"), ({"status": None}, "status"), ({"assigneeId": "x"}, "assigneeId")],
)
def test_bad_patch_is_400_naming_the_field(api, session, inbound, body, field):
    inbound(session)

    response = _patch(api, session, body)

    assert response.status_code == 400
    assert [f["field"] for f in response.get_json()["error"]["details"]["fields"]] == [field]


def test_unknown_chat_of_own_session_is_404_chat_not_found(api, session):
    response = _patch(api, session, {"status": "resolved"}, "491700000001@c.us")

    assert response.status_code == 404 and response.get_json()["error"]["code"] == "chat_not_found"


def test_read_zeroes_the_unread_count_and_is_audited_once(api, session, inbound):
    inbound(session)
    inbound(session, "again")

    first = api.post(f"/waha/sessions/{session['id']}/chats/{CHAT}/read")
    again = api.post(f"/waha/sessions/{session['id']}/chats/{CHAT}/read")

    assert first.status_code == 200 and first.get_json()["unreadCount"] == 0 and again.status_code == 200
    [event] = _actions("chat.read")
    assert event.details["unread"] == 2


# ---- notes ----------------------------------------------------------------------------------------------------


def test_notes_are_kept_newest_first_and_never_sent(api, session, inbound, sim):
    inbound(session)
    path = f"/waha/sessions/{session['id']}/chats/{CHAT}/notes"

    created = [api.post(path, json={"body": text}) for text in ("Called her", "Sent the invoice")]
    listed = api.get(path).get_json()

    assert [r.status_code for r in created] == [201, 201]
    assert [n["body"] for n in listed["data"]] == ["Sent the invoice", "Called her"]
    assert listed["data"][0]["author"].startswith("token ")
    assert sim.sent_messages(session["externalSessionId"]) == [] and len(_actions("chat.note")) == 2


def test_empty_note_is_400(api, session, inbound):
    inbound(session)

    response = api.post(f"/waha/sessions/{session['id']}/chats/{CHAT}/notes", json={"body": "   "})

    assert response.status_code == 400 and response.get_json()["error"]["details"]["fields"][0]["field"] == "body"


# ---- contacts -------------------------------------------------------------------------------------------------


def test_contacts_are_listed_and_searched(api, session, inbound):
    inbound(session, sender="491701111110", name="Ada")
    inbound(session, sender="491701111111", name="Grace")

    everyone = api.get("/waha/contacts").get_json()["data"]
    found = api.get("/waha/contacts?q=grace").get_json()["data"]

    assert [c["name"] for c in everyone] == ["Grace", "Ada"]
    assert [(c["chatId"], c["phone"], c["exists"]) for c in found] == [("491701111111@c.us", "491701111111", True)]


def test_check_answers_whether_a_number_is_on_whatsapp(api, working_session):
    path = f"/waha/contacts/check?sessionId={working_session['id']}&phone="

    known = api.get(path + "%2B491701234567").get_json()
    unknown = api.get(path + NOT_ON_WHATSAPP.replace("+", "%2B")).get_json()

    assert known == {"exists": True, "chatId": "491701234567@c.us"}
    assert unknown == {"exists": False, "chatId": None}


def test_check_answers_from_the_stored_answer_while_it_is_fresh(api, sim, working_session):
    path = f"/waha/contacts/check?sessionId={working_session['id']}&phone=%2B491701234567"
    api.get(path)
    sim.fail_next(5, 503)

    again = api.get(path)

    sim.fail_next(0)
    assert again.status_code == 200 and again.get_json()["exists"] is True


def test_check_needs_a_working_session(api, session):
    response = api.get(f"/waha/contacts/check?sessionId={session['id']}&phone=%2B491701234567")

    assert response.status_code == 409 and response.get_json()["error"]["code"] == "session_not_ready"


@pytest.mark.parametrize("query", ["phone=%2B491701234567", "sessionId=x", "sessionId=x&phone=12"])
def test_check_without_a_session_or_a_number_is_400(api, query):
    assert api.get(f"/waha/contacts/check?{query}").status_code == 400


def test_send_to_a_number_not_on_whatsapp_is_422_and_sends_nothing(api, sim, working_session):
    response = api.post(f"/waha/sessions/{working_session['id']}/send", json={"to": NOT_ON_WHATSAPP, "text": "Hi"})

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "not_on_whatsapp" and error["details"]["fields"][0]["field"] == "to"
    assert sim.sent_messages(working_session["externalSessionId"]) == []
    assert api.get("/waha/messages").get_json()["data"] == []


@pytest.mark.smoke
def test_send_lists_its_chat_with_the_message_as_last(api, working_session):
    sent = api.post(f"/waha/sessions/{working_session['id']}/send", json={"to": "+491701234567", "text": "Hello"})

    [chat] = _chats(api)

    assert sent.status_code == 200
    assert chat["chatId"] == "491701234567@c.us" and chat["unreadCount"] == 0
    assert (chat["lastMessage"]["id"], chat["lastMessage"]["text"]) == (sent.get_json()["id"], "Hello")


def test_missing_avatar_is_404(api):
    response = api.get("/waha/contacts/1/avatar")

    assert response.status_code == 404 and response.get_json()["error"]["code"] == "avatar_not_found"


# ---- quick replies --------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_quick_replies_are_managed_and_listed_by_shortcut(api):
    created = api.post("/waha/quick-replies", json={"shortcut": "hours", "text": "Hi {{name}}, 9-17."})
    api.post("/waha/quick-replies", json={"shortcut": "address", "text": "Main St 1"})
    changed = api.call("PATCH", f"/waha/quick-replies/{created.get_json()['id']}", json={"text": "Hi {{name}}, 8-18."})
    listed = api.get("/waha/quick-replies").get_json()["data"]
    deleted = api.delete(f"/waha/quick-replies/{created.get_json()['id']}")

    assert created.status_code == 201 and changed.get_json()["text"] == "Hi {{name}}, 8-18."
    assert [r["shortcut"] for r in listed] == ["address", "hours"]
    assert deleted.status_code == 204 and [
        r["shortcut"] for r in api.get("/waha/quick-replies").get_json()["data"]
    ] == ["address"]
    assert [len(_actions(a)) for a in ("quick_reply.create", "quick_reply.update", "quick_reply.delete")] == [2, 1, 1]


def test_quick_reply_shortcut_taken_is_409(api):
    api.post("/waha/quick-replies", json={"shortcut": "hours", "text": "one"})

    response = api.post("/waha/quick-replies", json={"shortcut": "hours", "text": "two"})

    assert response.status_code == 409 and response.get_json()["error"]["code"] == "quick_reply_exists"


def test_quick_replies_are_read_with_messages_read_and_managed_with_their_own_permission(client, tenant):
    reader = Api(client, make_token(tenant, ["messages:read", "messages:send"]))

    assert reader.get("/waha/quick-replies").status_code == 200
    refused = reader.post("/waha/quick-replies", json={"shortcut": "hours", "text": "x"})
    assert refused.status_code == 403 and refused.get_json()["error"]["details"]["required"] == "quick_replies:manage"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"shortcut": "Has Space", "text": "x"}, "shortcut"), ({"shortcut": "ok"}, "text"), ({}, "shortcut")],
)
def test_bad_quick_reply_is_400_naming_the_field(api, body, field):
    response = api.post("/waha/quick-replies", json=body)

    assert response.status_code == 400 and field in [
        f["field"] for f in response.get_json()["error"]["details"]["fields"]
    ]


def test_quick_replies_beyond_the_tenants_limit_are_409(api, monkeypatch):
    monkeypatch.setattr(quick_replies, "MAX_PER_TENANT", 1)
    api.post("/waha/quick-replies", json={"shortcut": "hours", "text": "one"})

    response = api.post("/waha/quick-replies", json={"shortcut": "address", "text": "two"})

    assert response.status_code == 409 and response.get_json()["error"]["code"] == "quick_reply_limit"


def test_other_tenants_quick_reply_is_404(api, other_api):
    theirs = other_api.post("/waha/quick-replies", json={"shortcut": "hours", "text": "x"}).get_json()

    changed = api.call("PATCH", f"/waha/quick-replies/{theirs['id']}", json={"text": "mine"})
    deleted = api.delete(f"/waha/quick-replies/{theirs['id']}")

    assert [r.status_code for r in (changed, deleted)] == [404, 404]
    assert changed.get_json()["error"]["code"] == "quick_reply_not_found"
    assert [r["text"] for r in other_api.get("/waha/quick-replies").get_json()["data"]] == ["x"]
    assert api.get("/waha/quick-replies").get_json()["data"] == []
