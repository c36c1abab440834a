"""What every signed-in request checks, read in one query and never cached: a signed-out browser, a changed role,
a membership removed or added all show on the very next page, also on the pages that run without a transaction
(the message log, its refreshes and the header badge)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import url_for
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import BrowserSession, Membership, utcnow
from portal.services import browser_sessions
from portal.services.tenants import set_membership
from tests.builders import PASSWORD, TEST_ACTOR, make_tenant, make_user, new_session, stored_message
from tests.helpers import csrf_token, post, text


def _sign_in(app, user, agent: str):
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = agent
    response = client.post(
        "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_token(client, "/login")}
    )
    assert response.status_code == 302
    return client


def test_a_browser_signed_out_elsewhere_is_refused_on_the_log_and_the_badge(app, owner):
    laptop = _sign_in(app, owner, "LaptopBrowser/1.0")
    phone = _sign_in(app, owner, "PhoneBrowser/2.0")
    assert phone.get("/messages/").status_code == 200
    assert phone.get("/inbox/badge").status_code == 200
    row = db.session.scalar(select(BrowserSession).where(BrowserSession.user_agent == "PhoneBrowser/2.0"))
    post(laptop, f"/account/browsers/{row.id}/sign-out", page="/account")
    assert phone.get("/messages/").status_code == 302
    refresh = phone.get("/inbox/badge", headers={"HX-Request": "true"})
    assert refresh.status_code == 204 and refresh.headers["HX-Redirect"].startswith("/login")
    assert laptop.get("/messages/").status_code == 200


def test_a_signed_out_browser_cannot_read_the_log_with_its_old_cookie(app, login, owner):
    browser = login(owner)
    thief = app.test_client()
    cookie = browser.get_cookie("session")
    assert cookie is not None
    thief.set_cookie("session", cookie.value)
    assert thief.get("/messages/").status_code == 200
    post(browser, "/logout")
    assert thief.get("/messages/").status_code == 302


def test_a_lowered_role_holds_on_the_members_next_page(login, tenant, owner):
    operator = make_user(tenant, "operator", email="operator@acme.example.com")
    client = login(operator)
    assert 'href="/messages/send' in text(client.get("/messages/"))
    set_membership(tenant, operator, "viewer", TEST_ACTOR)
    page = text(client.get("/messages/"))
    assert 'href="/messages/send' not in page and "· viewer" in page
    assert client.get("/messages/send").status_code == 403


def test_a_removed_member_is_refused_at_once(login, tenant, owner):
    operator = make_user(tenant, "operator", email="operator@acme.example.com")
    client = login(operator)
    assert client.get("/messages/").status_code == 200
    db.session.query(Membership).filter_by(user_id=operator.id).delete()
    db.session.commit()
    assert client.get("/messages/").status_code == 403


def test_another_tenants_log_stays_out_after_a_switch_is_taken_back(login, tenant, owner):
    other = make_tenant("globex", name="Globex")
    theirs = new_session(other, name="Globex line")
    stored_message(other, theirs, body="globex secret")
    set_membership(other, owner, "viewer", TEST_ACTOR)
    client = login(owner)
    assert "globex secret" not in text(client.get("/messages/"))
    post(client, "/switch-tenant", {"tenant_id": str(other.id)})
    assert "globex secret" in text(client.get("/messages/"))
    db.session.query(Membership).filter_by(user_id=owner.id, tenant_id=other.id).delete()
    db.session.commit()
    page = text(client.get("/messages/"))  # the browser still names Globex: it falls back to its own tenant
    assert "globex secret" not in page and "Acme" in page


def test_the_tenant_switcher_appears_with_the_second_membership(login, tenant, owner):
    client = login(owner)
    assert 'id="tenant-switch"' not in text(client.get("/messages/"))
    set_membership(make_tenant("globex", name="Globex"), owner, "viewer", TEST_ACTOR)
    page = text(client.get("/messages/"))
    assert 'id="tenant-switch"' in page and ">Globex</option>" in page and ">Acme</option>" in page


def test_the_log_records_the_browsers_use_and_keeps_it_signed_in(app, owner):
    client = _sign_in(app, owner, "LaptopBrowser/1.0")
    long_ago = utcnow() - timedelta(hours=browser_sessions.SESSION_IDLE_HOURS) + timedelta(minutes=5)
    db.session.execute(
        update(BrowserSession)
        .where(BrowserSession.user_id == owner.id)
        .values(last_used_at=long_ago, expires_at=long_ago + timedelta(hours=browser_sessions.SESSION_IDLE_HOURS))
    )
    db.session.commit()
    assert client.get("/messages/").status_code == 200
    db.session.expire_all()
    row = db.session.scalar(select(BrowserSession).where(BrowserSession.user_id == owner.id))
    assert row.last_used_at > utcnow() - timedelta(minutes=1)
    assert row.expires_at > utcnow() + timedelta(hours=browser_sessions.SESSION_IDLE_HOURS - 1)
    assert client.get("/messages/").status_code == 200


def test_an_expired_browser_session_is_refused_on_the_log(app, owner):
    client = _sign_in(app, owner, "LaptopBrowser/1.0")
    db.session.execute(
        update(BrowserSession).where(BrowserSession.user_id == owner.id).values(expires_at=utcnow() - timedelta(1))
    )
    db.session.commit()
    assert client.get("/messages/").status_code == 302


def test_log_rows_escape_text_and_quote_unusual_chat_ids(app, owner_client, tenant):
    session = new_session(tenant)
    plain = stored_message(tenant, session, chat_id="491701234567@c.us", body="<b>\"fish\" & 'chips'</b>")
    odd = stored_message(tenant, session, chat_id="a b/<c>@x", body="x")
    page = text(owner_client.get("/messages/"))
    assert "&lt;b&gt;&#34;fish&#34; &amp; &#39;chips&#39;&lt;/b&gt;" in page and "<b>" not in page
    with app.test_request_context():
        plain_url = url_for("messages.conversation", session_id=session.id, chat_id=plain.chat_id)
        odd_url = url_for("messages.conversation", session_id=session.id, chat_id=odd.chat_id)
    assert f'href="{plain_url}">+491701234567</a>' in page
    assert "%3Cc%3E" in odd_url and f'href="{odd_url}">a b/&lt;c&gt;@x</a>' in page


def test_log_rows_show_a_changed_status_text_and_session_name_at_once(owner_client, tenant):
    session = new_session(tenant, name="Front desk")
    message = stored_message(tenant, session, status="SERVER", body="first words")
    page = text(owner_client.get("/messages/"))
    assert 'data-status="SERVER"' in page and "first words" in page and ">Front desk</a>" in page
    message.status = "READ"
    db.session.commit()
    page = text(owner_client.get("/messages/"))
    assert 'data-status="READ"' in page and 'data-status="SERVER"' not in page
    message.body = "second words"
    db.session.commit()
    page = text(owner_client.get("/messages/"))
    assert "second words" in page and "first words" not in page
    session.name = "Back office"
    db.session.commit()
    rows = text(owner_client.get("/messages/")).split("<tbody", 1)[1]
    assert ">Back office</a>" in rows and "Front desk" not in rows


def test_log_rows_show_an_attachment_once_it_is_stored(owner_client, tenant):
    session = new_session(tenant)
    message = stored_message(
        tenant, session, body="", media={"kind": "image", "filename": "pic.jpg", "status": "pending"}
    )
    assert "(being fetched)" in text(owner_client.get("/messages/"))
    message.media = {"kind": "image", "filename": "pic.jpg", "status": "stored", "mimetype": "image/jpeg"}
    db.session.commit()
    page = text(owner_client.get("/messages/"))
    assert "(being fetched)" not in page and f'href="/messages/{message.id}/media"' in page


def test_the_log_page_reads_without_a_transaction_from_its_sign_in_check_on(app, owner):
    client = _sign_in(app, owner, "LaptopBrowser/1.0")
    assert client.get("/messages/").status_code == 200  # the browser's use is recorded: a later page only reads
    seen: dict[str, list[str]] = {"transactions": [], "autocommit": []}

    def on(name: str):
        return lambda conn, cursor, statement, *args: seen[name].append(statement)

    engines = {"transactions": db.engine, "autocommit": app.extensions["portal_autocommit_engine"]}
    listeners = {name: on(name) for name in engines}
    for name, engine in engines.items():
        sa.event.listen(engine, "before_cursor_execute", listeners[name])
    db.session.rollback()  # the test shares its session with the request: it starts as a fresh one would
    try:
        assert client.get("/messages/").status_code == 200
    finally:
        for name, engine in engines.items():
            sa.event.remove(engine, "before_cursor_execute", listeners[name])

    assert seen["transactions"] == []  # no BEGIN ... ROLLBACK around the page's reads
    assert any("FROM users" in s for s in seen["autocommit"])  # the sign-in check, the request's first statement
    assert any("FROM messages" in s for s in seen["autocommit"])
