"""Site-wide page details: the icon, the address sign-in returns to, breadcrumbs."""

from __future__ import annotations

import re

from tests.builders import PASSWORD, working_session
from tests.helpers import csrf_token, text


def test_pages_link_an_svg_icon(client):
    body = text(client.get("/login"))
    assert re.search(r'<link rel="icon" href="/static/img/favicon\.[0-9a-f]{12}\.svg" type="image/svg\+xml">', body)


def test_favicon_ico_leads_to_the_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert re.fullmatch(r"/static/img/favicon\.[0-9a-f]{12}\.svg", response.headers["Location"])
    icon = client.get(response.headers["Location"])
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data


def test_breadcrumbs_end_in_the_current_page_not_a_separator(login, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    client = login(owner)
    for path, current in [
        (f"/sessions/{session.id}", "Support line"),
        ("/sessions/new", "New session"),
        (f"/messages/chats/{session.id}", "Conversations"),
        ("/messages/send", "Send a message"),
        ("/dashboard/health", "WhatsApp servers"),
    ]:
        body = text(client.get(path))
        trail = re.search(r'<nav class="crumbs" aria-label="Breadcrumb">(.*?)</nav>', body, re.S).group(1)
        items = re.findall(r"<li[^>]*>(.*?)</li>", trail, re.S)
        assert items[-1] == current and 'aria-current="page"' in trail, path
        assert " /</p>" not in body and not re.search(r"/\s*</(p|li|nav)>", trail), path


def test_sign_in_redirect_keeps_the_address_without_a_stray_question_mark(client):
    assert client.get("/").headers["Location"] == "/login?next=/"
    assert client.get("/messages/").headers["Location"] == "/login?next=/messages/"


def test_sign_in_redirect_keeps_the_query_string(client):
    location = client.get("/messages/?direction=in").headers["Location"]
    assert location == "/login?next=/messages/?direction%3Din"


def test_sign_in_returns_to_the_page_asked_for_with_its_query(client, owner):
    login_page = client.get("/messages/?direction=in").headers["Location"]
    token = csrf_token(client, login_page)
    body = text(client.get(login_page))
    back = re.search(r'type="hidden" name="next" value="([^"]*)"', body).group(1).replace("&amp;", "&")
    response = client.post(
        login_page, data={"email": owner.email, "password": PASSWORD, "csrf_token": token, "next": back}
    )
    assert response.headers["Location"] == "/messages/?direction=in"
