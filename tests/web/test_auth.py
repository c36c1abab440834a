"""Signing in and out of the portal."""

import pytest

from portal.extensions import db
from portal.models import AuditEvent
from tests.builders import PASSWORD
from tests.helpers import csrf_token


@pytest.mark.smoke
def test_login_with_right_password_reaches_the_dashboard(login, owner):
    client = login(owner)
    page = client.get("/")
    assert page.status_code == 200
    assert "Acme" in page.get_data(as_text=True)


def test_dashboard_redirects_anonymous_visitors_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_wrong_password_is_refused_and_audited(client, owner):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"email": owner.email, "password": "wrong", "csrf_token": token})
    assert response.status_code == 200
    assert "do not match" in response.get_data(as_text=True)
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "auth.login_failed"))
    assert event is not None and event.ip == "127.0.0.1"


def test_login_without_csrf_token_is_rejected(client, owner):
    response = client.post("/login", data={"email": owner.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "The form expired" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_five_failures_lock_the_account(client, owner):
    token = csrf_token(client, "/login")
    for _ in range(5):
        client.post("/login", data={"email": owner.email, "password": "wrong", "csrf_token": token})
    response = client.post("/login", data={"email": owner.email, "password": PASSWORD, "csrf_token": token})
    assert "Too many failed attempts" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_logout_ends_the_session(login, owner):
    client = login(owner)
    response = client.post("/logout", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_login_does_not_redirect_off_site(client, owner):
    token = csrf_token(client, "/login")
    response = client.post(
        "/login",
        data={"email": owner.email, "password": PASSWORD, "csrf_token": token, "next": "https://evil.example/"},
    )
    assert response.headers["Location"] == "/"


def test_password_change_signs_out_other_browsers(login, owner, app):
    browser = login(owner)
    assert browser.get("/").status_code == 200
    owner.set_password("a-brand-new-password")
    db.session.commit()
    assert browser.get("/").status_code == 302


def test_remember_me_cookie_survives_the_session_cookie(app, owner):
    client = app.test_client()
    token = csrf_token(client, "/login")
    client.post("/login", data={"email": owner.email, "password": PASSWORD, "csrf_token": token, "remember": "y"})
    client.delete_cookie("session")
    assert client.get("/").status_code == 200


def test_sign_in_attempts_beyond_twenty_a_minute_from_one_address_are_refused(client):
    token = csrf_token(client, "/login")

    def attempt(i: int) -> int:
        data = {"email": f"guess{i}@example.com", "password": "wrong", "csrf_token": token}
        return client.post("/login", data=data).status_code

    statuses = [attempt(i) for i in range(21)]

    assert statuses[:20] == [200] * 20 and statuses[20] == 429
    assert client.get("/login").status_code == 200  # the page itself is not limited
