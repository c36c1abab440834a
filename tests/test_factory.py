"""App-wide behaviour: request ids, error bodies and pages, security headers."""

import re

import pytest


@pytest.mark.smoke
def test_every_response_carries_a_request_id(client):
    response = client.get("/login")
    assert len(response.headers["X-Request-ID"]) >= 8


def test_incoming_request_id_is_kept(client):
    response = client.get("/login", headers={"X-Request-ID": "abc12345-from-lb"})
    assert response.headers["X-Request-ID"] == "abc12345-from-lb"


@pytest.mark.smoke
def test_unknown_api_route_gets_the_json_error_body(client):
    response = client.get("/waha/no-such-thing")
    assert response.status_code == 404
    body = response.get_json()
    assert body["error"]["code"] == "not_found"
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]


def test_unknown_page_gets_an_html_page(client):
    response = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "We couldn't find that" in response.get_data(as_text=True)


def test_pages_forbid_inline_scripts_and_framing(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_inline_script(client):
    page = client.get("/login").get_data(as_text=True)
    assert "<script>" not in page
    assert re.search(r'src="/static/vendor/htmx\.min\.[0-9a-f]{12}\.js"', page)
