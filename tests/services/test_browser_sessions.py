"""Signed-in browsers kept server-side: opened at sign-in, checked on each request, ended, pruned."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.models import BrowserSession, utcnow
from portal.services import browser_sessions
from tests.builders import TEST_ACTOR


def _row(token: str) -> BrowserSession:
    return db.session.scalar(select(BrowserSession).where(BrowserSession.token_hash == browser_sessions._digest(token)))


def test_only_the_secrets_digest_is_stored(owner):
    token = browser_sessions.start(owner, TEST_ACTOR, remember=True, user_agent="Test/1.0")
    row = _row(token)
    assert row.token_hash != token and token not in row.token_hash
    found = browser_sessions.sign_in_check(owner.id, token, None)
    assert found is not None and found.session_id == row.id


def test_a_session_of_another_user_does_not_resolve(owner, tenant):
    from tests.builders import make_user

    other = make_user(tenant, "viewer", email="other@acme.example.com")
    token = browser_sessions.start(other, TEST_ACTOR, remember=False)
    assert browser_sessions.sign_in_check(owner.id, token, None) is None


def test_a_browser_without_remember_me_ends_after_idle_hours(owner):
    token = browser_sessions.start(owner, TEST_ACTOR, remember=False)
    row = _row(token)
    assert row.expires_at - row.created_at == timedelta(hours=browser_sessions.SESSION_IDLE_HOURS)
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert browser_sessions.sign_in_check(owner.id, token, None) is None


def test_a_remembered_browser_lasts_the_remember_duration(owner, app):
    token = browser_sessions.start(owner, TEST_ACTOR, remember=True)
    row = _row(token)
    assert row.expires_at - row.created_at == app.config["REMEMBER_COOKIE_DURATION"]


def test_prune_deletes_sessions_that_ended_long_ago(owner):
    long_ago = utcnow() - timedelta(days=browser_sessions.KEEP_ENDED_DAYS + 1)
    expired, revoked, recent, active = (browser_sessions.start(owner, TEST_ACTOR, remember=False) for _ in range(4))
    _row(expired).expires_at = long_ago
    _row(revoked).revoked_at = long_ago
    _row(recent).revoked_at = utcnow() - timedelta(days=1)
    db.session.commit()
    assert browser_sessions.prune() == 2
    assert _row(expired) is None and _row(revoked) is None
    assert _row(recent) is not None and browser_sessions.sign_in_check(owner.id, active, None) is not None
