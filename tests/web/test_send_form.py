"""The send form keeps what people typed and never changes it behind their back: overlong text is refused
with its length (never cut), and its idempotency key, CSRF token and upload limits behave."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Message
from tests.builders import working_session
from tests.helpers import csrf_token

HX = {"HX-Request": "true"}


def _messages() -> int:
    return db.session.scalar(select(func.count(Message.id))) or 0


def _post(client, data, htmx=True, headers=None):
    token = csrf_token(client, "/messages/send")
    extra = {**HX, "X-CSRFToken": token} if htmx else {}
    return client.post(
        "/messages/send",
        data={"csrf_token": token, "media_kind": "", **data},
        headers={**extra, **(headers or {})},
        content_type="multipart/form-data",
    )


def test_overlong_text_is_refused_with_its_length_and_kept_whole(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    text = "x" * 10_000

    response = _post(owner_client, {"session_id": session.id, "to": "+49 170 9999999", "text": text})

    body = response.get_data(as_text=True)
    assert "This message has 10,000 characters; WhatsApp takes at most 4,096." in body
    assert re.search(r">\s*x{10000}</textarea>", body)  # kept, not cut
    assert _messages() == 0 and sim.sent_messages(session.external_name) == []


def test_message_box_counts_instead_of_cutting(owner_client, tenant, sim):
    working_session(tenant, sim)
    page = owner_client.get("/messages/send").get_data(as_text=True)
    textarea = re.search(r"<textarea[^>]*>", page).group(0)
    assert "maxlength" not in textarea and 'data-limit="4096"' in textarea
    assert 'id="text-count"' in page


def _key(body: str) -> str:
    return re.search(r'name="idempotency_key" type="hidden" value="([0-9a-f]{32})"', body).group(1)


def test_form_key_stays_the_same_when_the_form_comes_back_with_an_error(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    key = _key(owner_client.get("/messages/send").get_data(as_text=True))

    body = _post(owner_client, {"session_id": session.id, "to": "", "text": "hello", "idempotency_key": key}).get_data(
        as_text=True
    )

    assert "Enter a phone number or chat id." in body
    assert _key(body) == key


def test_back_then_send_again_sends_once(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    first = _key(owner_client.get("/messages/send").get_data(as_text=True))
    data = {"session_id": session.id, "to": "+49 170 9999999", "text": "only once", "idempotency_key": first}
    assert _post(owner_client, data).headers.get("HX-Redirect")

    # Back: the browser shows the page of the same URL, which carries the form's key (form_key=...)
    again = owner_client.get(f"/messages/send?form_key={first}").get_data(as_text=True)
    assert _key(again) == first
    assert _post(owner_client, {**data, "idempotency_key": _key(again)}).headers.get("HX-Redirect")

    assert _messages() == 1
    assert len(sim.sent_messages(session.external_name)) == 1


def test_stale_csrf_token_gives_the_form_back_with_the_text(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    response = owner_client.post(
        "/messages/send",
        headers={**HX, "X-CSRFToken": "stale"},
        data={
            "csrf_token": "stale",
            "session_id": session.id,
            "to": "+49 170 9999999",
            "text": "my long careful reply",
            "idempotency_key": "a" * 32,
        },
        content_type="multipart/form-data",
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert "nothing was sent. Your text is kept: press Send again." in body
    assert "my long careful reply</textarea>" in body and _key(body) == "a" * 32
    fresh = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1)
    assert fresh != "stale"
    assert _messages() == 0


def test_expired_sign_in_keeps_the_text_and_asks_to_sign_in(client, tenant, sim):
    session = working_session(tenant, sim)
    response = client.post(
        "/messages/send",
        data={
            "session_id": session.id,
            "to": "+49 170 9999999",
            "text": "typed before the sign-in expired",
        },
        headers=HX,
        content_type="multipart/form-data",
    )
    body = response.get_data(as_text=True)
    assert "You were signed out, so nothing was sent." in body and 'href="/login"' in body
    assert "typed before the sign-in expired</textarea>" in body
    assert _messages() == 0


@pytest.fixture
def one_mb_limit(app):
    """MEDIA_MAX_BYTES of 1 MiB (and the app-wide body limit that goes with it) for one test."""
    saved = app.config["MEDIA_MAX_BYTES"], app.config["MAX_CONTENT_LENGTH"]
    app.config["MEDIA_MAX_BYTES"], app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024, 2 * 1024 * 1024
    yield
    app.config["MEDIA_MAX_BYTES"], app.config["MAX_CONTENT_LENGTH"] = saved


def test_file_over_the_limit_answers_413_with_the_form_and_the_text(owner_client, tenant, sim, one_mb_limit):
    session = working_session(tenant, sim)
    big = io.BytesIO(b"\0" * (3 * 1024 * 1024))  # past MAX_CONTENT_LENGTH: it used to drop the connection

    response = _post(
        owner_client,
        {
            "session_id": session.id,
            "to": "+49 170 9999999",
            "text": "see attached",
            "media_file": (big, "report.pdf", "application/pdf"),
        },
    )

    body = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "That file is too large to send (this one is 3.0 MB): the limit is 1 MB." in body
    assert "see attached</textarea>" in body and 'id="send-form"' in body
    assert _messages() == 0 and sim.sent_messages(session.external_name) == []


def test_body_far_over_the_limit_still_gets_an_answer(owner_client, tenant, sim, one_mb_limit):
    session = working_session(tenant, sim)
    huge = io.BytesIO(b"\0" * (8 * 1024 * 1024))

    response = _post(
        owner_client,
        {
            "session_id": session.id,
            "to": "+49 170 9999999",
            "text": "x",
            "media_file": (huge, "video.mp4", "video/mp4"),
        },
    )

    assert response.status_code == 413
    assert "That file is too large to send" in response.get_data(as_text=True)


def test_file_input_tells_the_browser_its_limit(owner_client, tenant, sim, one_mb_limit):
    working_session(tenant, sim)
    page = owner_client.get("/messages/send").get_data(as_text=True)
    file_input = re.search(r'<input[^>]*type="file"[^>]*>', page).group(0)
    assert 'data-max-bytes="1048576"' in file_input and "the limit is 1 MB" in file_input
