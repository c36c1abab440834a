"""Actions on messages over /waha, against the WAHA simulator: react, edit, delete for everyone, forward, reply.

Every answer is checked against the OpenAPI document (tests.helpers.Api); another tenant's message is a 404 on
every route (test_cross_tenant.py walks the route table).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from portal.extensions import db
from portal.models import AuditEvent, Message, WahaSession, utcnow
from tests.builders import create_session, make_token, stored_message, wait_for_status
from tests.helpers import Api

CUSTOMER = "491709999999"
CHAT = f"{CUSTOMER}@c.us"
OTHER_TO = "+491701234567"


def _error(response: Any) -> dict[str, Any]:
    return response.get_json()["error"]


def _session_row(session: dict[str, Any]) -> WahaSession:
    db.session.expire_all()
    return db.session.get(WahaSession, session["id"])


def _inbound(tenant: Any, sim: Any, session: dict[str, Any], text: str = "Where is my order?") -> Message:
    """A message the customer sent: in the simulator's store and in the portal's log (as webhook processing
    leaves it)."""
    waha_id = sim.inbound(session["externalSessionId"], from_=CUSTOMER, text=text)
    return stored_message(
        tenant, _session_row(session), direction="in", status="DEVICE", chat_id=CHAT, body=text, waha_message_id=waha_id
    )


def _sent(api: Api, session: dict[str, Any], text: str = "Your order ships today", **body: Any) -> dict[str, Any]:
    response = api.post(f"/waha/sessions/{session['id']}/send", json={"to": f"+{CUSTOMER}", "text": text, **body})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _forward(api: Api, message_id: int, session_id: str, **kwargs: Any) -> Any:
    return api.post(f"/waha/messages/{message_id}/forward", json={"sessionId": session_id, "to": OTHER_TO}, **kwargs)


def _events(sim: Any, name: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in sim.events() if e["event"] == name]


def _audited(tenant: Any, action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(db.select(AuditEvent).where(AuditEvent.tenant_id == tenant.id, AuditEvent.action == action))
    )


def _age(message_id: int, **delta: Any) -> None:
    """Make a stored message older (as if sent `delta` ago)."""
    message = db.session.get(Message, message_id)
    message.sent_at = utcnow() - timedelta(**delta)
    db.session.commit()


# ---- reactions ------------------------------------------------------------------------------------------------


def test_react_sets_our_reaction_on_whatsapp_and_in_the_answer(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)

    response = api.post(f"/waha/messages/{inbound.id}/reaction", json={"emoji": "👍"})

    assert response.status_code == 200, response.get_json()
    assert [(r["emoji"], r["by"]) for r in response.get_json()["reactions"]] == [("👍", "me")]
    [reaction] = _events(sim, "message.reaction")
    assert (reaction["fromMe"], reaction["reaction"]) == (True, {"text": "👍", "messageId": inbound.waha_message_id})
    assert [e.target_id for e in _audited(tenant, "message.react")] == [str(inbound.id)]


def test_react_with_empty_emoji_removes_our_reaction(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)
    api.post(f"/waha/messages/{inbound.id}/reaction", json={"emoji": "🎉"})

    response = api.post(f"/waha/messages/{inbound.id}/reaction", json={"emoji": ""})

    assert response.get_json()["reactions"] == []
    assert [r["reaction"]["text"] for r in _events(sim, "message.reaction")] == ["🎉", ""]


@pytest.mark.parametrize("emoji", ["hello", "👍 👍", "👍" * 17, ":)"])
def test_react_with_something_other_than_one_emoji_is_400(api: Api, sim: Any, tenant: Any, working_session: Any, emoji):
    inbound = _inbound(tenant, sim, working_session)

    response = api.post(f"/waha/messages/{inbound.id}/reaction", json={"emoji": emoji})

    assert response.status_code == 400
    assert [f["field"] for f in _error(response)["details"]["fields"]] == ["emoji"]
    assert _events(sim, "message.reaction") == []


@pytest.mark.parametrize("emoji", ["❤️", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪", "1️⃣"])
def test_react_accepts_emoji_sequences(api: Api, sim: Any, tenant: Any, working_session: Any, emoji):
    inbound = _inbound(tenant, sim, working_session)

    assert api.post(f"/waha/messages/{inbound.id}/reaction", json={"emoji": emoji}).status_code == 200


def test_react_to_a_deleted_message_is_409(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)
    inbound.revoked_at = utcnow()
    db.session.commit()

    response = api.post(f"/waha/messages/{inbound.id}/reaction", json={"emoji": "👍"})

    assert (response.status_code, _error(response)["code"]) == (409, "message_deleted")
    assert _events(sim, "message.reaction") == []


def test_react_to_a_message_that_never_reached_whatsapp_is_409(api: Api, tenant: Any, working_session: Any):
    failed = stored_message(tenant, _session_row(working_session), status="ERROR", waha_message_id=f"true_{CHAT}_X1")

    response = api.post(f"/waha/messages/{failed.id}/reaction", json={"emoji": "👍"})

    assert (response.status_code, _error(response)["code"]) == (409, "message_not_sent")


def test_react_when_the_session_is_not_working_is_409(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)
    assert api.post(f"/waha/sessions/{working_session['id']}/stop").status_code == 200

    response = api.post(f"/waha/messages/{inbound.id}/reaction", json={"emoji": "👍"})

    assert (response.status_code, _error(response)["code"]) == (409, "session_not_ready")


def test_react_with_waha_down_is_503_and_writes_nothing(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)
    sim.fail_next(5, 503)

    response = api.post(f"/waha/messages/{inbound.id}/reaction", json={"emoji": "👍"})

    assert (response.status_code, _error(response)["code"]) == (503, "waha_unavailable")
    assert response.headers["Retry-After"]
    db.session.expire_all()
    assert db.session.get(Message, inbound.id).reactions is None
    assert _audited(tenant, "message.react") == []


# ---- edits ----------------------------------------------------------------------------------------------------


def test_edit_changes_our_message_on_whatsapp_and_here(api: Api, sim: Any, tenant: Any, working_session: Any):
    sent = _sent(api, working_session, "Your order ships todya")

    response = api.patch(f"/waha/messages/{sent['id']}", json={"text": "Your order ships today"})

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["text"], body["metadata"]["original_body"]) == ("Your order ships today", "Your order ships todya")
    assert body["editedAt"] is not None
    assert [m["body"] for m in sim.sent_messages(working_session["externalSessionId"])] == ["Your order ships today"]
    [edited] = _events(sim, "message.edited")
    assert (edited["body"], edited["editedMessageId"]) == ("Your order ships today", sent["messageId"].split("_")[-1])
    assert [e.target_id for e in _audited(tenant, "message.edit")] == [str(sent["id"])]


def test_edit_with_the_same_text_changes_nothing(api: Api, sim: Any, working_session: Any):
    sent = _sent(api, working_session, "Same")

    response = api.patch(f"/waha/messages/{sent['id']}", json={"text": "Same"})

    assert (response.status_code, response.get_json()["editedAt"]) == (200, None)
    assert _events(sim, "message.edited") == []


def test_edit_of_the_customers_message_is_409(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)

    response = api.patch(f"/waha/messages/{inbound.id}", json={"text": "Rewritten"})

    assert (response.status_code, _error(response)["code"]) == (409, "message_not_own")


def test_edit_after_the_window_is_409(api: Api, sim: Any, working_session: Any):
    sent = _sent(api, working_session)
    _age(sent["id"], minutes=16)

    response = api.patch(f"/waha/messages/{sent['id']}", json={"text": "Too late"})

    assert (response.status_code, _error(response)["code"]) == (409, "edit_window_passed")
    assert _error(response)["details"]["windowSeconds"] == 900
    assert _events(sim, "message.edited") == []


def test_edit_of_a_media_message_is_409(api: Api, tenant: Any, working_session: Any):
    media = {"kind": "image", "mimetype": "image/png", "caption": "menu"}
    photo = stored_message(tenant, _session_row(working_session), media=media, waha_message_id=f"true_{CHAT}_P1")

    response = api.patch(f"/waha/messages/{photo.id}", json={"text": "new caption"})

    assert (response.status_code, _error(response)["code"]) == (409, "message_not_editable")


def test_edit_to_blank_text_is_400(api: Api, working_session: Any):
    sent = _sent(api, working_session)

    response = api.patch(f"/waha/messages/{sent['id']}", json={"text": "   "})

    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "text"


# ---- deletes --------------------------------------------------------------------------------------------------


def test_delete_removes_our_message_for_everyone(api: Api, sim: Any, tenant: Any, working_session: Any):
    sent = _sent(api, working_session, "Wrong chat, sorry")

    response = api.delete(f"/waha/messages/{sent['id']}")
    again = api.delete(f"/waha/messages/{sent['id']}")

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["deletedAt"] is not None
    assert again.get_json()["deletedAt"] == response.get_json()["deletedAt"]
    [revoked] = _events(sim, "message.revoked")
    assert revoked["revokedMessageId"] == sent["messageId"].split("_")[-1]
    assert len(_audited(tenant, "message.delete")) == 1


def test_delete_of_the_customers_message_is_409(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)

    response = api.delete(f"/waha/messages/{inbound.id}")

    assert (response.status_code, _error(response)["code"]) == (409, "message_not_own")
    assert _events(sim, "message.revoked") == []


def test_delete_after_two_days_is_409(api: Api, working_session: Any):
    sent = _sent(api, working_session)
    _age(sent["id"], days=2, minutes=1)

    response = api.delete(f"/waha/messages/{sent['id']}")

    assert (response.status_code, _error(response)["code"]) == (409, "delete_window_passed")


# ---- forwards -------------------------------------------------------------------------------------------------


def test_forward_sends_a_copy_to_another_chat(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session, "Please pass this on")
    headers = {"Idempotency-Key": "forward-1"}

    response = _forward(api, inbound.id, working_session["id"], headers=headers)
    again = _forward(api, inbound.id, working_session["id"], headers=headers)

    assert response.status_code == 200, response.get_json()
    copy = response.get_json()
    assert (copy["direction"], copy["to"], copy["text"]) == ("out", "491701234567@c.us", "Please pass this on")
    assert copy["metadata"]["forwarded_from"] == inbound.id
    assert copy["status"] in ("PENDING", "SERVER") and copy["messageId"].startswith("true_491701234567@c.us_")
    assert again.get_json()["id"] == copy["id"]
    sent = sim.sent_messages(working_session["externalSessionId"])
    assert [(m["chatId"], m["body"]) for m in sent] == [("491701234567@c.us", "Please pass this on")]
    assert [e.target_id for e in _audited(tenant, "message.forward")] == [str(copy["id"])]


def test_one_key_names_one_request_across_sends_forwards_and_scheduled_sends(
    api: Api, sim: Any, tenant: Any, working_session: Any
):
    inbound = _inbound(tenant, sim, working_session, "Please pass this on")
    send = f"/waha/sessions/{working_session['id']}/send"
    later = {"sendAt": (utcnow() + timedelta(hours=2)).isoformat()}

    assert _forward(api, inbound.id, working_session["id"], headers={"Idempotency-Key": "k-f"}).status_code == 200
    same_text_as_the_forward = api.post(
        send, json={"to": OTHER_TO, "text": "Please pass this on"}, headers={"Idempotency-Key": "k-f"}
    )
    assert (
        api.post(send, json={"to": OTHER_TO, "text": "hi", **later}, headers={"Idempotency-Key": "k-s"}).status_code
        == 202
    )
    forward_after_schedule = _forward(api, inbound.id, working_session["id"], headers={"Idempotency-Key": "k-s"})
    plain = api.post(send, json={"to": OTHER_TO, "text": "plain"}, headers={"Idempotency-Key": "k-m"})
    assert plain.status_code == 200
    with_metadata = api.post(
        send, json={"to": OTHER_TO, "text": "plain", "metadata": {"order": "1"}}, headers={"Idempotency-Key": "k-m"}
    )
    with_reply = api.post(
        send,
        json={"to": OTHER_TO, "text": "plain", "replyTo": plain.get_json()["id"]},
        headers={"Idempotency-Key": "k-m"},
    )

    for refused in (same_text_as_the_forward, forward_after_schedule, with_metadata, with_reply):
        assert (refused.status_code, _error(refused)["code"]) == (409, "idempotency_key_reused")
    bodies = [m["body"] for m in sim.sent_messages(working_session["externalSessionId"])]
    assert bodies == ["Please pass this on", "plain"]


def test_forward_with_a_used_idempotency_key_is_409(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)
    headers = {"Idempotency-Key": "k-forward"}
    api.post(f"/waha/sessions/{working_session['id']}/send", json={"to": OTHER_TO, "text": "x"}, headers=headers)

    response = _forward(api, inbound.id, working_session["id"], headers=headers)

    assert (response.status_code, _error(response)["code"]) == (409, "idempotency_key_reused")


def test_forward_through_another_session_is_400(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)
    second = create_session(api, "second")

    response = _forward(api, inbound.id, second["id"])

    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "sessionId"


def test_forward_through_another_tenants_session_is_404(
    api: Api, sim: Any, tenant: Any, working_session: Any, other_session: Any
):
    inbound = _inbound(tenant, sim, working_session)

    response = _forward(api, inbound.id, other_session["id"])

    assert (response.status_code, _error(response)["code"]) == (404, "session_not_found")
    assert sim.sent_messages(working_session["externalSessionId"]) == []


def test_forward_of_a_deleted_message_is_409(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)
    inbound.revoked_at = utcnow()
    db.session.commit()

    response = _forward(api, inbound.id, working_session["id"])

    assert (response.status_code, _error(response)["code"]) == (409, "message_deleted")


@pytest.mark.parametrize(
    ("waha_status", "status", "code"), [(501, 400, "not_supported"), (503, 503, "waha_unavailable")]
)
def test_forward_that_waha_refuses_is_stored_as_not_sent(
    api: Api, sim: Any, tenant: Any, working_session: Any, waha_status, status, code
):
    # 501: the engine cannot forward (GOWS in 2025); 503: WAHA is down. Either way WhatsApp never got it.
    inbound = _inbound(tenant, sim, working_session)
    sim.fail_next(1, waha_status)

    response = _forward(api, inbound.id, working_session["id"])

    assert (response.status_code, _error(response)["code"]) == (status, code)
    assert _error(response)["details"]["outcome"] == "unsent"
    stored = api.get(f"/waha/messages/{_error(response)['details']['messageId']}").get_json()
    assert stored["status"] == "ERROR"


# ---- replies --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["portal id", "whatsapp id"])
def test_send_with_reply_to_quotes_the_message(api: Api, sim: Any, tenant: Any, working_session: Any, by: str):
    inbound = _inbound(tenant, sim, working_session)
    reply_to = inbound.id if by == "portal id" else inbound.waha_message_id

    sent = _sent(api, working_session, "It left the warehouse this morning", replyTo=reply_to)

    assert sent["replyTo"] == inbound.id
    assert api.get(f"/waha/messages/{sent['id']}").get_json()["replyTo"] == inbound.id
    [on_whatsapp] = sim.sent_messages(working_session["externalSessionId"])
    assert on_whatsapp["replyTo"] == inbound.waha_message_id


def test_send_with_reply_to_another_chats_message_is_400(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)

    response = api.post(
        f"/waha/sessions/{working_session['id']}/send", json={"to": OTHER_TO, "text": "hi", "replyTo": inbound.id}
    )

    assert (response.status_code, _error(response)["code"]) == (400, "validation_error")
    assert _error(response)["details"]["fields"][0]["field"] == "replyTo"
    assert sim.sent_messages(working_session["externalSessionId"]) == []


def test_send_with_reply_to_another_tenants_message_is_400(
    api: Api, other_api: Api, sim: Any, working_session: Any, other_tenant: Any
):
    foreign = stored_message(other_tenant, _other_session(other_api, sim), chat_id=CHAT, waha_message_id="true_x_Y")

    response = api.post(
        f"/waha/sessions/{working_session['id']}/send", json={"to": f"+{CUSTOMER}", "text": "hi", "replyTo": foreign.id}
    )

    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "replyTo"


def test_send_with_reply_to_a_deleted_message_is_409(api: Api, sim: Any, tenant: Any, working_session: Any):
    inbound = _inbound(tenant, sim, working_session)
    inbound.revoked_at = utcnow()
    db.session.commit()

    response = api.post(
        f"/waha/sessions/{working_session['id']}/send", json={"to": f"+{CUSTOMER}", "text": "hi", "replyTo": inbound.id}
    )

    assert (response.status_code, _error(response)["code"]) == (409, "message_deleted")


def _other_session(other_api: Api, sim: Any) -> WahaSession:
    created = create_session(other_api, "globex-line")
    wait_for_status(other_api, created["id"], "SCAN_QR_CODE")
    return _session_row(created)


# ---- permissions and the round trip through WhatsApp ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "/reaction", {"emoji": "👍"}),
        ("PATCH", "", {"text": "x"}),
        ("DELETE", "", None),
        ("POST", "/forward", {"sessionId": "s", "to": OTHER_TO}),
    ],
    ids=["react", "edit", "delete", "forward"],
)
def test_actions_need_messages_send(client: Any, sim: Any, tenant: Any, working_session: Any, method, suffix, body):
    inbound = _inbound(tenant, sim, working_session)
    reader = Api(client, make_token(tenant, ["messages:read"], name="reader"))

    response = reader.call(method, f"/waha/messages/{inbound.id}{suffix}", json=body)

    assert (response.status_code, _error(response)["code"]) == (403, "forbidden")
    assert reader.get(f"/waha/messages/{inbound.id}").status_code == 200


def test_the_customers_reaction_and_edit_reach_the_message(
    api: Api, sim: Any, live_server: Any, run_jobs: Any, working_session_live: dict[str, Any]
):
    session = working_session_live
    sent = _sent(api, session, "Can you confirm?")
    sim.customer_react(session["externalSessionId"], sent["messageId"], "👍")
    api.post(f"/waha/messages/{sent['id']}/reaction", json={"emoji": "🙏"})

    deadline = time.monotonic() + 10
    reactions: list[Any] = []
    while time.monotonic() < deadline:
        run_jobs()
        reactions = api.get(f"/waha/messages/{sent['id']}").get_json()["reactions"]
        if len(reactions) == 2:
            break
        time.sleep(0.1)
    assert sorted((r["emoji"], r["by"]) for r in reactions) == [("👍", CHAT), ("🙏", "me")]
