"""Browsers where the second step is skipped for 30 days ("remember this browser").

The cookie is signed with SECRET_KEY and names the user and a random secret; the secret's sha256 is kept in
remembered_browsers, so the server can refuse a cookie it signed: revoked rows (password change, factor reset,
factors turned off) and expired ones stop working at once. The password is still asked every time.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import RememberedBrowser, User, rowcount, utcnow

DAYS = 30
COOKIE = "portal_2fa_browser"
_SALT = "portal.two-factor-browser"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def remember(user: User, user_agent: str = "") -> str:
    """Remember a browser for the user; returns the cookie value. The caller commits."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        RememberedBrowser(
            user_id=user.id,
            token_hash=_digest(token),
            user_agent=(user_agent or "")[:300],
            created_at=now,
            expires_at=now + timedelta(days=DAYS),
        )
    )
    return _serializer().dumps({"u": user.id, "t": token})


def is_remembered(user: User, cookie: str | None) -> bool:
    """Whether `cookie` is a live remembered-browser cookie of this user."""
    if not cookie:
        return False
    try:
        data = _serializer().loads(cookie, max_age=DAYS * 86400)
    except BadSignature:
        return False
    if not isinstance(data, dict) or data.get("u") != user.id or not isinstance(data.get("t"), str):
        return False
    row = db.session.scalar(select(RememberedBrowser).where(RememberedBrowser.token_hash == _digest(data["t"])))
    return row is not None and row.user_id == user.id and row.revoked_at is None and row.expires_at > utcnow()


def revoke_all(user: User) -> int:
    """Forget every remembered browser of the user; how many. The caller commits."""
    result = db.session.execute(
        update(RememberedBrowser)
        .where(RememberedBrowser.user_id == user.id, RememberedBrowser.revoked_at.is_(None))
        .values(revoked_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    return max(rowcount(result), 0)
