"""The inbox's thread pane and its actions over HTTP: fragments, live changes, the composer, the message actions
through wahasim, and the guards (another tenant's chat is a 404 on every route, CSRF, viewers read only)."""

from __future__ import annotations

from typing import Any

import pytest

from portal import pagination
from portal.extensions import db
from portal.models import AuditEvent, Chat, Message, utcnow
from portal.services import sessions
from tests.builders import TEST_ACTOR, make_tenant, make_user, stored_message
from tests.helpers import csrf_token, quiet_waha_webhooks, wait_for

CUSTOMER = "491709999999"
CHAT = f"{CUSTOMER}@c.us"


@pytest.fixture(autouse=True)
def _quiet(app: Any) -> Any:
    with quiet_waha_webhooks(app):
        yield


def _working(tenant: Any, sim: Any, name: str = "Support") -> Any:
    session = sessions.create_session(tenant, TEST_ACTOR, name=name)
    sim.scan(session.external_name)
    wait_for(lambda: sessions.sync_session(tenant, session.id).status == "WORKING")
    return sessions.get_session(tenant, session.id)


def _chat(tenant: Any, session: Any, chat_id: str = CHAT, name: str = "Ana", unread: int = 0) -> Chat:
    chat = Chat(tenant_id=tenant.id, session_id=session.id, chat_id=chat_id, name=name, unread_count=unread)
    db.session.add(chat)
    db.session.commit()
    return chat


@pytest.fixture
def working(tenant: Any, sim: Any) -> Any:
    return _working(tenant, sim)


@pytest.fixture
def chat(tenant: Any, working: Any) -> Chat:
    return _chat(tenant, working)


def _sent(tenant: Any, session: Any, body: str = "our answer", **fields: Any) -> Message:
    """An outbound text WhatsApp has (as a send leaves it)."""
    fields.setdefault("waha_message_id", f"true_{CHAT}_{body.replace(' ', '')[:20].upper()}")
    fields.setdefault("sent_at", utcnow())
    return stored_message(tenant, session, body=body, **fields)


def _post(client: Any, url: str, **data: Any) -> Any:
    return client.post(url, data=data, headers={"X-CSRFToken": csrf_token(client, "/messages/")})


# ---- the pane --------------------------------------------------------------------------------------------------


def test_pane_shows_name_number_session_and_messages_oldest_first(owner_client, tenant, working, chat):
    stored_message(tenant, working, direction="in", body="first question", waha_message_id="false_A1")
    _sent(tenant, working, "the answer")
    page = owner_client.get(f"/inbox/chats/{chat.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Ana" in page and "+49 170 9999999" in page and "Support" in page
    assert page.index("first question") < page.index("the answer")
    assert 'id="composer"' in page and "<html" not in page


def test_pane_without_htmx_opens_the_inbox_page_with_the_chat(owner_client, chat):
    response = owner_client.get(f"/inbox/chats/{chat.id}")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/inbox/?chat={chat.id}")
    page = owner_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<html" in page and 'id="thread-root"' in page


def test_reply_shows_the_quoted_message_also_for_replies_from_whatsapp(owner_client, tenant, working, chat):
    original = _sent(tenant, working, "delivery on monday")
    stored_message(
        tenant, working, direction="in", body="ok thanks", extra={"waha": {"reply_to": original.waha_message_id}}
    )
    page = owner_client.get(f"/inbox/chats/{chat.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert f'data-quote="{original.id}"' in page


def test_opening_a_chat_with_unread_messages_marks_it_read_and_tells_whatsapp(owner_client, tenant, sim, working):
    sim.inbound(working.external_name, from_=CUSTOMER, text="anyone?")
    chat = _chat(tenant, working, unread=1)
    owner_client.get(f"/inbox/chats/{chat.id}", headers={"HX-Request": "true"})
    db.session.refresh(chat)
    assert chat.unread_count == 0
    assert [r["chatId"] for r in sim.read_receipts(working.external_name)] == [CHAT]


def test_a_viewer_sees_no_composer_no_actions_and_marks_nothing_read(viewer_client, tenant, working):
    chat = _chat(tenant, working, unread=2)
    _sent(tenant, working, "hello there")
    page = viewer_client.get(f"/inbox/chats/{chat.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hello there" in page and 'id="composer"' not in page and "tmenu" not in page
    db.session.refresh(chat)
    assert chat.unread_count == 2


def test_older_pages_follow_the_cursor(owner_client, tenant, working, chat):
    for n in range(45):
        stored_message(tenant, working, body=f"note {n:02d}")
    first = owner_client.get(f"/inbox/chats/{chat.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "note 44" in first and "note 04" not in first
    cursor = first.split('data-older="', 1)[1].split('"', 1)[0]
    older = owner_client.get(f"/inbox/chats/{chat.id}/older", query_string={"before": cursor})
    text = older.get_data(as_text=True)
    assert "note 00" in text and "note 04" in text and "note 05" not in text and older.headers["X-Older"] == ""


def test_fresh_answers_new_and_changed_messages_since_the_cursor(owner_client, tenant, working, chat):
    old = _sent(tenant, working, "before")
    after = pagination.encode_time_id(utcnow(), 0)
    oldest = pagination.encode_time_id(old.created_at, old.id)
    old.reactions = {"4917000@c.us": {"text": "👍", "at": "x"}}
    db.session.commit()
    stored_message(tenant, working, direction="in", body="brand new")
    response = owner_client.get(f"/inbox/chats/{chat.id}/fresh", query_string={"after": after, "from": oldest})
    text = response.get_data(as_text=True)
    assert "brand new" in text and "👍" in text and response.headers["X-After"]


def test_empty_chat_shows_its_first_message_without_a_reload(owner_client, tenant, working, chat):
    page = owner_client.get(f"/inbox/chats/{chat.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'id="thread-empty"' in page and "No messages in this chat yet." in page
    after = page.split('data-after="', 1)[1].split('"', 1)[0]
    stored_message(tenant, working, direction="in", status="DEVICE", body="hello there")
    stored_message(tenant, working, direction="in", status="DEVICE", body="other chat", chat_id="491701111111@c.us")
    text = owner_client.get(f"/inbox/chats/{chat.id}/fresh", query_string={"after": after}).get_data(as_text=True)
    assert "hello there" in text and "other chat" not in text


def test_fresh_with_a_bad_cursor_is_refused_in_words(owner_client, chat):
    response = owner_client.get(f"/inbox/chats/{chat.id}/fresh", query_string={"after": "nope"})
    assert response.status_code == 400 and "cursor" in response.get_data(as_text=True)


# ---- composer ----------------------------------------------------------------------------------------------------


def test_send_answers_the_new_message_and_a_double_click_sends_once(owner_client, tenant, sim, working, chat):
    data = {"text": "on its way", "idempotency_key": "compose-1"}
    first = _post(owner_client, f"/inbox/chats/{chat.id}/send", **data)
    second = _post(owner_client, f"/inbox/chats/{chat.id}/send", **data)
    assert first.status_code == second.status_code == 201
    assert "on its way" in first.get_data(as_text=True)
    assert [m["body"] for m in sim.sent_messages(working.external_name)] == ["on its way"]


def test_send_with_a_reply_quotes_the_message(owner_client, tenant, sim, working, chat):
    original = _sent(tenant, working, "which size")
    sim_id = sim.inbound(working.external_name, from_=CUSTOMER, text="L please")
    inbound = stored_message(tenant, working, direction="in", body="L please", waha_message_id=sim_id)
    response = _post(owner_client, f"/inbox/chats/{chat.id}/send", text="noted", reply_to=str(inbound.id))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert f'data-quote="{inbound.id}"' in response.get_data(as_text=True)
    assert original.id != inbound.id


def test_send_with_a_file_sends_it_with_the_text_as_caption(owner_client, sim, working, chat):
    from io import BytesIO

    response = owner_client.post(
        f"/inbox/chats/{chat.id}/send",
        data={"text": "the invoice", "media_file": (BytesIO(b"%PDF-1.4 test"), "invoice.pdf", "application/pdf")},
        headers={"X-CSRFToken": csrf_token(owner_client, "/messages/")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert "invoice.pdf" in response.get_data(as_text=True)


def test_send_with_waha_down_is_a_503_in_words(owner_client, sim, working, chat):
    sim.fail_next(10, status=503)
    response = _post(owner_client, f"/inbox/chats/{chat.id}/send", text="are you there", idempotency_key="k-503")
    assert response.status_code == 503 and response.get_data(as_text=True).strip()


def test_empty_send_is_refused(owner_client, chat):
    response = _post(owner_client, f"/inbox/chats/{chat.id}/send", text="  ")
    assert response.status_code == 400 and "Type a message" in response.get_data(as_text=True)


def test_typing_reaches_whatsapp(owner_client, sim, working, chat):
    assert _post(owner_client, f"/inbox/chats/{chat.id}/typing").status_code == 204
    assert [t["chatId"] for t in sim.typing_log(working.external_name)] == [CHAT]


# ---- actions -----------------------------------------------------------------------------------------------------


def test_react_answers_the_message_with_the_reaction(owner_client, tenant, working, chat):
    message = _sent(tenant, working, "photo attached")
    response = _post(owner_client, f"/inbox/chats/{chat.id}/messages/{message.id}/react", emoji="❤️")
    assert response.status_code == 200 and 'class="mine"' in response.get_data(as_text=True)
    assert db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "message.react")) is not None


def test_edit_answers_the_edited_message(owner_client, tenant, working, chat):
    message = _sent(tenant, working, "see you at 5")
    response = _post(owner_client, f"/inbox/chats/{chat.id}/messages/{message.id}/edit", text="see you at 6")
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and "see you at 6" in text and "edited" in text


def test_edit_after_the_window_is_a_409_with_the_services_message(owner_client, tenant, working, chat):
    from datetime import timedelta

    message = _sent(tenant, working, "old words", sent_at=utcnow() - timedelta(hours=1))
    response = _post(owner_client, f"/inbox/chats/{chat.id}/messages/{message.id}/edit", text="new words")
    assert response.status_code == 409 and "15 minutes" in response.get_data(as_text=True)


def test_delete_answers_the_deleted_message(owner_client, tenant, working, chat):
    message = _sent(tenant, working, "wrong chat")
    response = _post(owner_client, f"/inbox/chats/{chat.id}/messages/{message.id}/delete")
    assert response.status_code == 200 and "This message was deleted" in response.get_data(as_text=True)


def test_forward_sends_a_copy_to_the_chosen_chat(owner_client, tenant, sim, working, chat):
    other = _chat(tenant, working, "491701111111@c.us", name="Ben")
    assert _post(owner_client, f"/inbox/chats/{chat.id}/send", text="the address is 5 Main St").status_code == 201
    message = db.session.scalar(db.select(Message).where(Message.chat_id == CHAT))
    picker = owner_client.get(f"/inbox/chats/{chat.id}/messages/{message.id}/forward").get_data(as_text=True)
    assert "Ben" in picker
    response = _post(owner_client, f"/inbox/chats/{chat.id}/messages/{message.id}/forward", target=str(other.id))
    assert response.status_code == 200 and "Ben" in response.headers["X-Notice"]
    copy = db.session.scalar(db.select(Message).where(Message.chat_id == "491701111111@c.us"))
    assert copy is not None and copy.body == "the address is 5 Main St" and copy.status != "ERROR"


def test_action_on_a_message_of_another_chat_is_a_404(owner_client, tenant, working, chat):
    elsewhere = stored_message(tenant, working, chat_id="491702222222@c.us", waha_message_id="true_x_1")
    response = _post(owner_client, f"/inbox/chats/{chat.id}/messages/{elsewhere.id}/react", emoji="👍")
    assert response.status_code == 404


# ---- guards ------------------------------------------------------------------------------------------------------

GETS = ["", "/older", "/fresh?after=x", "/avatar", "/messages/{m}/forward"]
POSTS = [
    "/send",
    "/typing",
    "/messages/{m}/react",
    "/messages/{m}/edit",
    "/messages/{m}/delete",
    "/messages/{m}/forward",
]


@pytest.fixture
def foreign(sim: Any) -> tuple[Chat, Message]:
    other = make_tenant("globex")
    session = _working(other, sim, "Theirs")
    return _chat(other, session), _sent(other, session, "theirs")


@pytest.mark.parametrize("path", GETS)
def test_another_tenants_chat_is_not_found_on_every_page(owner_client, foreign, path):
    chat, message = foreign
    assert owner_client.get(f"/inbox/chats/{chat.id}" + path.format(m=message.id)).status_code == 404


@pytest.mark.parametrize("path", POSTS)
def test_another_tenants_chat_is_not_found_on_every_action(owner_client, foreign, path):
    chat, message = foreign
    response = _post(owner_client, f"/inbox/chats/{chat.id}" + path.format(m=message.id), text="x", emoji="👍")
    assert response.status_code == 404


@pytest.mark.parametrize("path", POSTS)
def test_actions_without_the_csrf_token_are_refused(owner_client, tenant, working, chat, path):
    message = _sent(tenant, working, "guarded")
    assert (
        owner_client.post(f"/inbox/chats/{chat.id}" + path.format(m=message.id), data={"text": "x"}).status_code == 400
    )


@pytest.mark.parametrize("path", POSTS)
def test_viewers_are_refused_every_action(viewer_client, tenant, working, chat, path):
    message = _sent(tenant, working, "read only")
    response = _post(viewer_client, f"/inbox/chats/{chat.id}" + path.format(m=message.id), text="x", emoji="👍")
    assert response.status_code == 403


def test_signed_out_people_are_sent_to_sign_in(client, chat):
    assert client.get(f"/inbox/chats/{chat.id}").status_code == 302


def test_member_of_two_tenants_sees_only_the_current_tenants_chat(login, tenant, working, chat, sim):
    other = make_tenant("initech")
    both = make_user(tenant, "operator", email="both@example.com")
    from portal.models import Membership

    db.session.add(Membership(user_id=both.id, tenant_id=other.id, role="owner"))
    db.session.commit()
    client = login(both)
    assert client.get(f"/inbox/chats/{chat.id}", headers={"HX-Request": "true"}).status_code == 200


def test_reply_over_the_plans_quota_is_a_409_in_words(owner_client, tenant, sim, working, chat):
    tenant.max_messages_per_month = 0
    db.session.commit()
    response = _post(owner_client, f"/inbox/chats/{chat.id}/send", text="one more", idempotency_key="k-quota")
    assert response.status_code == 409
    assert "Messages sent per month" in response.get_data(as_text=True)
    assert sim.sent_messages(working.external_name) == []
