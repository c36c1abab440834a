"""One rule for every `next` address a request supplies: a path on this site, quoted for the header."""

from __future__ import annotations

import re

import pytest

from portal.security import quote_location, safe_next
from tests.builders import PASSWORD, working_session
from tests.helpers import csrf_token

HX = {"HX-Request": "true"}

REFUSED = [
    "https://evil.example/",
    "http:evil.example",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/%5Cevil.example",
    "/%5cevil.example",
    "/%2F%2Fevil.example",
    "/%2F/evil.example",
    "/%255Cevil.example",
    "/\t/evil.example",
    "/%09/evil.example",
    "/\r\nSet-Cookie:x=1",
    "/%0d%0aSet-Cookie:x=1",
    "javascript:alert(1)",
    "evil.example",
    "",
    "/messages\\..\\evil",
    " /messages",
]


@pytest.mark.parametrize("target", REFUSED)
def test_safe_next_refuses_addresses_that_leave_the_site(target):
    assert safe_next(target, "/fallback") == "/fallback"


@pytest.mark.parametrize("target", ["/", "/messages/?session=3&page=2", "/messages/chats/1/4917@c.us#end"])
def test_safe_next_keeps_paths_of_this_site(target):
    assert safe_next(target) == target


def test_quote_location_encodes_what_a_browser_would_read_otherwise():
    assert quote_location("/a b/\\é") == "/a%20b/%5C%C3%A9"
    assert quote_location("/already%20quoted?x=1&y=2") == "/already%20quoted?x=1&y=2"


def test_send_form_refuses_an_encoded_backslash_next(login, owner, tenant, sim):
    client = login(owner)
    session = working_session(tenant, sim)
    form = client.get("/messages/send?next=/%5Cevil.example").get_data(as_text=True)
    kept = re.search(r'name="next" type="hidden" value="([^"]*)"', form).group(1)
    assert kept == ""
    token = csrf_token(client, "/messages/send")
    response = client.post(
        "/messages/send",
        headers={**HX, "X-CSRFToken": token},
        data={
            "csrf_token": token,
            "media_kind": "",
            "session_id": session.id,
            "to": "+49 170 9999999",
            "text": "Hi",
            "next": "/\\evil.example",
        },
        content_type="multipart/form-data",
    )
    assert response.headers["HX-Redirect"] == f"/messages/chats/{session.id}/491709999999@c.us"


@pytest.mark.parametrize("target", ["/%5Cevil.example", "/\\evil.example", "//evil.example"])
def test_login_refuses_to_return_off_site(client, owner, target):
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": owner.email, "password": PASSWORD, "csrf_token": token, "next": target}
    )
    assert response.headers["Location"] == "/"
