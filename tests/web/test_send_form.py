"""The send form keeps what people typed and never changes it behind their back: overlong text is refused
with its length (never cut), and its idempotency key, CSRF token and upload limits behave."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Message
from tests.conftest import csrf_token
from tests.web.session_builders import working_session

HX = {"HX-Request": "true"}


@pytest.fixture
def owner_client(login, owner):
    return login(owner)


def _messages() -> int:
    return db.session.scalar(select(func.count(Message.id))) or 0


def _post(client, data, htmx=True, headers=None):
    token = csrf_token(client, "/messages/send")
    extra = {**HX, "X-CSRFToken": token} if htmx else {}
    return client.post("/messages/send", data={"csrf_token": token, "media_kind": "", **data},
                       headers={**extra, **(headers or {})}, content_type="multipart/form-data")


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
