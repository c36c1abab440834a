"""Signing a browser in and out: the server-side browser session and Flask-Login's cookies, kept together."""

from __future__ import annotations

from flask import request, session
from flask_login import current_user, login_user, logout_user

from portal.models import User
from portal.services import browser_sessions
from portal.tenancy import request_actor


def sign_in_browser(
    user: User,
    *,
    remember: bool = False,
    method: str = "password",
    tenant_id: int | None = None,
    second_factor: str | None = None,
    enrol_required: bool = False,
) -> None:
    """A fresh session (no fixation) tied to a new server-side browser session; the remember-me cookie, when
    asked for, carries the same secret, so signing out ends both. `second_factor` and `enrol_required`: see
    browser_sessions.start (portal/web/second_factor.py decides them)."""
    session.clear()
    actor = request_actor("user", user.email, str(user.id))
    user.browser_token = browser_sessions.start(
        user,
        actor,
        remember=remember,
        method=method,
        user_agent=request.headers.get("User-Agent", ""),
        second_factor=second_factor,
        enrol_required=enrol_required,
    )
    login_user(user, remember=remember)
    if tenant_id is not None:
        session["tenant_id"] = tenant_id


def current_browser_token() -> str | None:
    """The browser-session secret of the signed-in request, if any."""
    return getattr(current_user, "browser_token", None) if current_user.is_authenticated else None


def sign_out_browser() -> None:
    """Forget the sign-in in this browser: the session and the remember-me cookie."""
    logout_user()
    session.clear()
