"""Messaging pages: send with errors in place, the log with filters, keyset pages and live ticks, a session's
chats, a conversation's address opening it in the inbox, and media downloads."""

from __future__ import annotations

import io
import re
import struct
import zlib
from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import Chat, Message, utcnow
from portal.storage import storage
from tests.builders import make_tenant, new_session, stored_chat, stored_message, working_session
from tests.helpers import csrf_token

HX = {"HX-Request": "true"}


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\xff\xff"))
        + chunk(b"IEND", b"")
    )


def send(client, data, htmx=True):
    """Post the send form as the browser does (multipart, CSRF token from the page)."""
    token = csrf_token(client, "/messages/send")
    headers = {**HX, "X-CSRFToken": token} if htmx else {}
    return client.post(
        "/messages/send",
        data={"csrf_token": token, "media_kind": "", **data},
        headers=headers,
        content_type="multipart/form-data",
    )


# ---- send ----------------------------------------------------------------------------------------------------


def test_send_page_preselects_a_working_session(owner_client, tenant, sim):
    new_session(tenant, "Not linked")
    session = working_session(tenant, sim, "Linked")
    page = owner_client.get("/messages/send").get_data(as_text=True)
    assert re.search(rf'<option selected value="{session.id}">Linked \(working\)</option>', page)


def test_send_page_without_sessions_points_to_creating_one(owner_client):
    page = owner_client.get("/messages/send").get_data(as_text=True)
    assert "You need a connected session first" in page


def test_send_text_delivers_and_opens_the_conversation(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = send(
        owner_client,
        {"session_id": session.id, "to": "+49 170 9999999", "text": "Hello there", "idempotency_key": "key-1"},
    )
    message = db.session.scalar(db.select(Message).where(Message.tenant_id == tenant.id))
    assert response.headers["HX-Redirect"] == f"/messages/chats/{session.id}/491709999999@c.us"
    assert message.body == "Hello there" and message.source == "portal" and message.direction == "out"
    assert [(m["chatId"], m["body"]) for m in sim.sent_messages(session.external_name)] == [
        ("491709999999@c.us", "Hello there")
    ]
    chat = db.session.scalar(db.select(Chat).where(Chat.session_id == session.id))
    opened = owner_client.get(response.headers["HX-Redirect"])
    assert opened.status_code == 303 and opened.headers["Location"] == f"/inbox/?chat={chat.id}"
    assert "Hello there" in owner_client.get(opened.headers["Location"]).get_data(as_text=True)


def test_send_without_scripts_redirects_so_a_reload_sends_nothing(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = send(owner_client, {"session_id": session.id, "to": "+49 170 9999999", "text": "Hi"}, htmx=False)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/messages/chats/{session.id}/491709999999@c.us"
    assert len(sim.sent_messages(session.external_name)) == 1


def test_send_page_opened_from_the_log_returns_to_it(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    log = owner_client.get(f"/messages/?session={session.id}").get_data(as_text=True)
    link = re.search(r'<a class="button primary" href="(/messages/send[^"]*)">Send a message</a>', log).group(1)
    form = owner_client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    back = re.search(r'name="next" type="hidden" value="([^"]*)"', form).group(1).replace("&amp;", "&")
    assert back == f"/messages/?session={session.id}"
    response = send(
        owner_client, {"session_id": session.id, "to": "+49 170 9999999", "text": "Hi", "next": back}, htmx=False
    )
    assert response.headers["Location"] == back


def test_send_refuses_to_return_to_another_site(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = send(
        owner_client,
        {"session_id": session.id, "to": "+49 170 9999999", "text": "Hi", "next": "//evil.example.com/"},
        htmx=False,
    )
    assert response.headers["Location"] == f"/messages/chats/{session.id}/491709999999@c.us"


def test_send_twice_with_the_same_form_sends_once(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    data = {"session_id": session.id, "to": "+49 170 9999999", "text": "Once", "idempotency_key": "same-key"}
    send(owner_client, data)
    send(owner_client, data)
    assert len(sim.sent_messages(session.external_name)) == 1


def test_send_image_upload_sends_media_with_caption(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = send(
        owner_client,
        {
            "session_id": session.id,
            "to": "491709999999",
            "text": "Look",
            "media_file": (io.BytesIO(tiny_png()), "dot.png", "image/png"),
        },
    )
    message = db.session.scalar(db.select(Message).where(Message.tenant_id == tenant.id))
    assert "HX-Redirect" in response.headers
    assert message.media["kind"] == "image" and message.media["filename"] == "dot.png"
    assert message.body == "Look"


def test_send_from_session_not_working_shows_error_in_place_and_keeps_the_text(owner_client, tenant):
    session = new_session(tenant, "Unlinked")
    response = send(owner_client, {"session_id": session.id, "to": "+49 170 9999999", "text": "Still here"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in body and 'id="send-form"' in body
    assert re.search(r'id="session_id-error"[^>]*>[^<]*not connected to WhatsApp', body)
    assert "Still here" in body


def test_send_to_invalid_number_shows_error_next_to_recipient(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = send(owner_client, {"session_id": session.id, "to": "12", "text": "Hi"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="to-error"' in body and 'value="12"' in body
    assert sim.sent_messages(session.external_name) == []


def test_send_faster_than_the_pacing_limit_says_when_to_retry(owner_client, tenant, sim):
    tenant.send_rate_per_minute = 1
    db.session.commit()
    session = working_session(tenant, sim)
    send(owner_client, {"session_id": session.id, "to": "+49 170 9999999", "text": "one"})
    response = send(owner_client, {"session_id": session.id, "to": "+49 170 9999999", "text": "two"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "faster than its limit" in body and "Try again in" in body
    assert "two" in body


def test_send_without_text_or_file_asks_for_one(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    body = send(owner_client, {"session_id": session.id, "to": "+49 170 9999999", "text": ""}).get_data(as_text=True)
    assert "Write a message or attach a file." in body


def test_send_without_csrf_token_is_rejected(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = owner_client.post("/messages/send", data={"session_id": session.id, "to": "491709999999", "text": "x"})
    assert response.status_code == 400
    assert "nothing was sent. Your text is kept: press Send again." in response.get_data(as_text=True)
    assert sim.sent_messages(session.external_name) == []


def test_viewer_sees_no_send_controls(viewer_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session)
    assert "Send a message" not in viewer_client.get("/messages/").get_data(as_text=True)


def test_viewer_cannot_send(viewer_client, tenant, sim):
    session = working_session(tenant, sim)
    token = csrf_token(viewer_client, "/messages/")
    response = viewer_client.post(
        "/messages/send", data={"csrf_token": token, "session_id": session.id, "to": "491709999999", "text": "x"}
    )
    assert response.status_code == 403
    assert sim.sent_messages(session.external_name) == []


def test_sending_from_other_tenants_session_is_refused(owner_client, sim):
    other = make_tenant("globex", name="Globex")
    session = working_session(other, sim, "Globex line")
    body = send(owner_client, {"session_id": session.id, "to": "491709999999", "text": "x"}).get_data(as_text=True)
    assert "Choose one of your sessions." in body
    assert sim.sent_messages(session.external_name) == []


# ---- log -----------------------------------------------------------------------------------------------------


def test_log_shows_messages_newest_first_with_ticks(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, body="oldest-body", status="DEVICE")
    stored_message(tenant, session, body="middle-body", status="READ")
    stored_message(tenant, session, body="newest-body", status="ERROR", error="number not on WhatsApp")
    page = owner_client.get("/messages/").get_data(as_text=True)
    assert page.index("newest-body") < page.index("middle-body") < page.index("oldest-body")
    assert re.search(r'class="ticks ticks-READ"[^>]*title="Read"><span aria-hidden="true">✓✓', page)
    assert re.search(r'class="ticks ticks-DEVICE"[^>]*title="Delivered"', page)
    assert re.search(r'class="ticks ticks-ERROR"[^>]*title="Failed"><span aria-hidden="true">!', page)
    assert "Not sent: number not on WhatsApp." in page


def test_log_without_messages_explains_where_they_come_from(owner_client):
    page = owner_client.get("/messages/").get_data(as_text=True)
    assert "No messages yet." in page


@pytest.mark.parametrize(
    "query,shown,hidden",
    [
        ("direction=in", "incoming", "outgoing"),
        ("status=READ", "outgoing", "incoming"),
        ("chat=%2B49+170+1111111", "other chat", "incoming"),
        ("q=COMING", "incoming", "outgoing"),
    ],
)
def test_log_filters_narrow_the_list(owner_client, tenant, sim, query, shown, hidden):
    session = working_session(tenant, sim)
    stored_message(tenant, session, direction="in", status="DEVICE", body="incoming")
    stored_message(tenant, session, direction="out", status="READ", body="outgoing")
    stored_message(tenant, session, direction="out", status="SERVER", body="other chat", chat_id="491701111111@c.us")
    page = owner_client.get(f"/messages/?{query}").get_data(as_text=True)
    assert shown in page and hidden not in page


def test_log_filters_by_session(owner_client, tenant, sim):
    first = working_session(tenant, sim, "First")
    second = new_session(tenant, "Second")
    stored_message(tenant, first, body="from first")
    stored_message(tenant, second, body="from second")
    page = owner_client.get(f"/messages/?session={second.id}").get_data(as_text=True)
    assert "from second" in page and "from first" not in page


def test_log_filters_by_dates(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, body="last week", created_at=utcnow() - timedelta(days=7))
    stored_message(tenant, session, body="today")
    today = utcnow().date()
    page = owner_client.get(f"/messages/?since={today - timedelta(days=1)}&until={today}").get_data(as_text=True)
    assert "today" in page and "last week" not in page


def test_log_with_end_before_start_says_so(owner_client):
    page = owner_client.get("/messages/?since=2026-05-02&until=2026-05-01").get_data(as_text=True)
    assert "The end date is before the start date." in page


def test_log_pages_back_with_an_older_link(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    start = utcnow() - timedelta(hours=2)
    for n in range(55):
        stored_message(tenant, session, body=f"msg-{n:02d}", status="READ", created_at=start + timedelta(seconds=n))
    page = owner_client.get("/messages/").get_data(as_text=True)
    older = re.search(r'<a id="log-older" href="([^"]+)" rel="next">Older</a>', page).group(1).replace("&amp;", "&")
    assert "msg-54" in page and "msg-05" in page and "msg-04" not in page
    second = owner_client.get(older).get_data(as_text=True)
    assert "msg-04" in second and "msg-00" in second and "msg-05" not in second
    assert 'rel="next"' not in second


def test_log_with_a_mangled_cursor_shows_the_newest_page(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, body="newest")
    page = owner_client.get("/messages/?cursor=not-a-cursor").get_data(as_text=True)
    assert "That page link is not valid any more" in page and "newest" in page


def _fresh_url(page: str, block: str) -> str:
    tag = re.search(rf'<[a-z]+ id="{block}"[^>]*>', page).group(0)
    return re.search(r'hx-get="([^"]+)"', tag).group(1).replace("&amp;", "&")


def test_log_newest_page_keeps_polling_its_newest_rows_when_everything_is_read(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, status="READ")
    page = owner_client.get("/messages/").get_data(as_text=True)
    assert re.search(r'<tbody id="log-fresh" hx-get="[^"]+" hx-trigger="every 3s"', page)


def test_log_newest_rows_show_a_message_that_arrived_after_the_page_loaded(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, status="READ", body="yesterday", created_at=utcnow() - timedelta(days=1))
    stored_message(tenant, session, status="READ", body="shown at load")
    fresh_url = _fresh_url(owner_client.get("/messages/").get_data(as_text=True), "log-fresh")
    stored_message(tenant, session, direction="in", status="DEVICE", body="arrived later")
    response = owner_client.get(fresh_url, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert body.lstrip().startswith('<tbody id="log-fresh"') and "<html" not in body
    assert body.index("arrived later") < body.index("shown at load") and "yesterday" not in body


def test_log_newest_rows_follow_the_filters(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, direction="in", status="DEVICE", body="first question")
    fresh_url = _fresh_url(owner_client.get("/messages/?direction=in").get_data(as_text=True), "log-fresh")
    stored_message(tenant, session, direction="out", status="SERVER", body="an answer")
    stored_message(tenant, session, direction="in", status="DEVICE", body="second question")
    body = owner_client.get(fresh_url, headers=HX).get_data(as_text=True)
    assert "second question" in body and "an answer" not in body


def test_log_newest_rows_with_a_mangled_time_are_refused(owner_client):
    assert owner_client.get("/messages/?fresh=yesterday").status_code == 400


def test_log_empty_newest_page_polls_until_the_first_message(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = owner_client.get("/messages/", headers=HX)
    assert response.status_code == 200 and 'hx-trigger="every 3s"' in response.get_data(as_text=True)
    stored_message(tenant, session, direction="in", status="DEVICE", body="the first one")
    body = owner_client.get("/messages/", headers=HX).get_data(as_text=True)
    assert "the first one" in body and 'id="log-fresh"' in body


def _older_page(owner_client, tenant, session, oldest_status: str) -> str:
    start = utcnow() - timedelta(minutes=30)
    for n in range(55):
        stored_message(
            tenant,
            session,
            body=f"msg-{n:02d}",
            created_at=start + timedelta(seconds=n),
            status=oldest_status if n == 0 else "READ",
        )
    page = owner_client.get("/messages/").get_data(as_text=True)
    return re.search(r'<a id="log-older" href="([^"]+)"', page).group(1).replace("&amp;", "&")


def test_log_older_page_polls_while_a_sent_message_is_not_read(owner_client, tenant, sim):
    older = _older_page(owner_client, tenant, working_session(tenant, sim), "DEVICE")
    response = owner_client.get(older, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in body and 'id="message-log" hx-get=' in body and "log-fresh" not in body


def test_log_older_page_stops_polling_with_286_once_everything_is_read(owner_client, tenant, sim):
    older = _older_page(owner_client, tenant, working_session(tenant, sim), "READ")
    response = owner_client.get(older, headers=HX)
    assert response.status_code == 286
    assert "hx-trigger" not in response.get_data(as_text=True)


# ---- conversations and media ---------------------------------------------------------------------------------


def test_chats_page_lists_conversations_of_a_session(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, body="to anna", chat_id="491701111111@c.us")
    stored_message(tenant, session, body="to ben", chat_id="491702222222@c.us")
    page = owner_client.get(f"/messages/chats/{session.id}").get_data(as_text=True)
    assert "+491701111111" in page and "+491702222222" in page
    assert f"/messages/chats/{session.id}/491702222222@c.us" in page


def test_session_page_links_its_chats_in_the_inbox_and_its_conversations(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    page = owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    assert f'href="/inbox/?session={session.id}"' in page and f'href="/messages/chats/{session.id}"' in page


def test_log_links_each_message_to_its_conversation_in_the_inbox(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    message = stored_message(tenant, session, body="where is my parcel")
    chat = stored_chat(session, name="Ana")
    log = owner_client.get("/messages/").get_data(as_text=True)
    link = re.search(rf'<a id="m{message.id}-chat" href="([^"]+)"', log).group(1)
    response = owner_client.get(link)
    assert response.status_code == 303 and response.headers["Location"] == f"/inbox/?chat={chat.id}"
    page = owner_client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="thread-root"' in page and "where is my parcel" in page and "Ana" in page


def test_chats_page_opens_each_conversation_in_the_inbox(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, body="to ben", chat_id="491702222222@c.us")
    chat = stored_chat(session, "491702222222")
    page = owner_client.get(f"/messages/chats/{session.id}").get_data(as_text=True)
    link = f"/messages/chats/{session.id}/491702222222@c.us"
    assert f'href="{link}"' in page
    assert owner_client.get(link).headers["Location"] == f"/inbox/?chat={chat.id}"


@pytest.mark.parametrize("chat_id", ["491701111111@c.us", "x" * 300, "not a chat"])
def test_conversation_the_inbox_does_not_have_opens_the_sessions_chats_with_a_notice(
    owner_client, tenant, sim, chat_id
):
    session = working_session(tenant, sim)
    stored_chat(session, "491709999999")
    response = owner_client.get(f"/messages/chats/{session.id}/{chat_id}")
    assert response.status_code == 303 and response.headers["Location"] == f"/inbox/?session={session.id}"
    page = owner_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "There is no conversation with that chat in this session yet" in page
    assert "+49 170 9999999" in page


def test_conversation_of_an_unknown_session_is_not_found(owner_client):
    assert owner_client.get("/messages/chats/no-such-session/491709999999@c.us").status_code == 404


def test_conversation_of_other_tenants_session_is_not_found(owner_client, sim):
    other = make_tenant("globex", name="Globex")
    session = working_session(other, sim, "Globex line")
    stored_message(other, session)
    stored_chat(session, "491709999999")
    assert owner_client.get(f"/messages/chats/{session.id}/491709999999@c.us").status_code == 404
    assert owner_client.get(f"/messages/chats/{session.id}").status_code == 404


def test_media_of_other_tenants_message_is_not_found(owner_client, sim):
    other = make_tenant("globex", name="Globex")
    message = stored_message(
        other,
        working_session(other, sim, "Globex line"),
        media={"kind": "image", "mimetype": "image/png", "filename": "x.png"},
    )
    assert owner_client.get(f"/messages/{message.id}/media").status_code == 404


def test_log_links_media_to_the_download_route(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    message = stored_message(
        tenant,
        session,
        direction="in",
        status="DEVICE",
        body=None,
        media={"kind": "image", "mimetype": "image/png", "filename": "photo.png", "status": "stored", "key": "k"},
    )
    page = owner_client.get("/messages/").get_data(as_text=True)
    assert f'href="/messages/{message.id}/media"' in page and "photo.png" in page


def test_media_of_a_stored_file_downloads_inline(owner_client, tenant, sim, media_backend):
    session = working_session(tenant, sim)
    key = f"{tenant.id}/{session.id}/photo.png"
    storage().save(key, tiny_png(), "image/png")
    message = stored_message(
        tenant,
        session,
        direction="in",
        status="DEVICE",
        body=None,
        media={"kind": "image", "mimetype": "image/png", "filename": "photo.png", "status": "stored", "key": key},
    )
    response = owner_client.get(f"/messages/{message.id}/media")
    assert response.status_code == 200
    assert response.data == tiny_png() and response.mimetype == "image/png"
    assert response.headers["Content-Disposition"].startswith("inline")
    assert "private" in response.headers["Cache-Control"]


def _stored_media(tenant, session, data: bytes, mimetype: str, filename: str):
    key = f"{tenant.id}/{session.id}/{filename}"
    storage().save(key, data, mimetype)
    return stored_message(
        tenant,
        session,
        direction="in",
        status="DEVICE",
        body=None,
        media={"kind": "document", "mimetype": mimetype, "filename": filename, "status": "stored", "key": key},
    )


def test_media_is_served_under_a_policy_that_loads_and_runs_nothing(owner_client, tenant, sim, media_backend):
    message = _stored_media(tenant, working_session(tenant, sim), tiny_png(), "image/png", "photo.png")
    response = owner_client.get(f"/messages/{message.id}/media")
    policy = response.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; img-src 'self';") and "script-src" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "mimetype,filename", [("application/pdf", "invoice.pdf"), ("image/svg+xml", "logo.svg"), ("text/html", "page.html")]
)
def test_media_other_than_images_and_sound_is_downloaded(owner_client, tenant, sim, mimetype, filename, media_backend):
    message = _stored_media(tenant, working_session(tenant, sim), b"<svg onload=alert(1)>", mimetype, filename)
    response = owner_client.get(f"/messages/{message.id}/media")
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert filename in response.headers["Content-Disposition"]


def test_media_not_fetched_yet_is_not_found_and_not_linked(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    message = stored_message(
        tenant,
        session,
        direction="in",
        status="DEVICE",
        body=None,
        media={"kind": "document", "mimetype": "application/pdf", "filename": "a.pdf", "status": "pending"},
    )
    assert owner_client.get(f"/messages/{message.id}/media").status_code == 404
    page = owner_client.get("/messages/").get_data(as_text=True)
    assert "a.pdf" in page and "(being fetched)" in page and f"/messages/{message.id}/media" not in page


def test_log_rows_escape_what_people_typed_and_link_the_chat_as_the_route_does(owner_client, tenant, sim, app):
    session = working_session(tenant, sim)
    session.name = "Sales <b>&</b>"
    db.session.commit()
    odd_chat = "team #1 ü?&x@g.us"
    message = stored_message(tenant, session, chat_id=odd_chat, body="<script>alert(1)</script> & more")
    page = owner_client.get("/messages/").get_data(as_text=True)
    with app.test_request_context():
        from flask import url_for

        chat_url = url_for("messages.conversation", session_id=session.id, chat_id=odd_chat)
    row = page[page.index(f'id="message-{message.id}"') :]
    row = row[: row.index("</tr>")]
    assert "<script>" not in row and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in row
    assert "Sales &lt;b&gt;&amp;&lt;/b&gt;" in row
    assert f'href="{chat_url.replace("&", "&amp;")}"' in row
    assert owner_client.get(chat_url).status_code == 303  # the link opens the conversation


@pytest.mark.parametrize(
    "media,shown",
    [
        ({"kind": "document", "filename": "a.pdf", "status": "pending"}, "(being fetched)"),
        ({"kind": "image", "status": "refused", "reason": "too large"}, "(not kept: too large)"),
        ({"kind": "document", "filename": "b.pdf", "size": 2048, "mimetype": "application/pdf"}, "(sent, 2.0 KB)"),
    ],
)
def test_log_says_what_became_of_an_attachment(owner_client, tenant, sim, media, shown):
    stored_message(tenant, working_session(tenant, sim), direction="out", body=None, media=media)
    page = owner_client.get("/messages/").get_data(as_text=True)
    assert shown in page


def test_log_filter_error_goes_away_once_the_filter_is_fixed(owner_client):
    bad = owner_client.get("/messages/?since=2026-05-10&until=2026-05-01").get_data(as_text=True)
    assert "The end date is before the start date." in bad
    good = owner_client.get("/messages/?since=2026-05-01&until=2026-05-10").get_data(as_text=True)
    assert "The end date is before the start date." not in good and 'value="2026-05-10"' in good
    again = owner_client.get("/messages/?since=2026-05-10&until=2026-05-01").get_data(as_text=True)
    assert "The end date is before the start date." in again
