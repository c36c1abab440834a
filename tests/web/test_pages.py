"""Site-wide page details: the icon, the address sign-in returns to, breadcrumbs."""

from __future__ import annotations

from tests.web.admin_builders import text


def test_pages_link_an_svg_icon(client):
    body = text(client.get("/login"))
    assert '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in body


def test_favicon_ico_leads_to_the_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response.headers["Location"] == "/static/img/favicon.svg"
    icon = client.get(response.headers["Location"])
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data
