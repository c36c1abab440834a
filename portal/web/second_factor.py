"""The second step of a browser sign-in, and the gate that keeps browsers without a required factor out.

After the password (or single sign-on) a user with a factor is not signed in: the cookie session only holds a
short-lived, signed note of who passed the first step (PENDING), which no page but the second step reads. Only
the second step signs the browser in (portal.web.signin), recording how it passed.

The gate runs before every page: a browser that did not pass a second factor, while one is required (the team
requires it, the user was told to enrol at sign-in, or it is the platform area and the user a platform admin), is
led to enrolment, and reaches nothing else until a factor is on.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, request, session, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.extensions import db, htmx
from portal.i18n import gettext as _
from portal.models import User
from portal.security import quote_location, safe_next
from portal.services import audit, two_factor
from portal.services.two_factor import remembered
from portal.services.two_factor.passkeys import RelyingParty
from portal.tenancy import current_principal, request_actor
from portal.web.signin import sign_in_browser, sign_out_browser

PENDING = "second_step"
PENDING_SECONDS = 300  # the second step must follow the password within this time
ENROL_ENDPOINTS = frozenset(
    {
        "auth.logout",
        "two_factor.index",
        "two_factor.totp_start",
        "two_factor.totp_setup",
        "two_factor.totp_confirm",
        "two_factor.passkey_register_options",
        "two_factor.passkey_register",
        "two_factor.recovery_codes",
    }
)


def relying_party() -> RelyingParty:
    """The WebAuthn relying party: WEBAUTHN_RP_ID / WEBAUTHN_ORIGIN, else this request's host."""
    origin = current_app.config.get("WEBAUTHN_ORIGIN") or request.host_url.rstrip("/")
    rp_id = current_app.config.get("WEBAUTHN_RP_ID") or urlsplit(origin).hostname or request.host.split(":")[0]
    return RelyingParty(id=rp_id, origin=origin)


def destination(user: User, next_url: str | None) -> str:
    """Where a browser goes once signed in."""
    if not next_url and user.is_platform_admin and not user.memberships:
        return url_for("platform.index")  # a platform admin of no tenant has no dashboard
    return safe_next(next_url) or url_for("dashboard.index")


def after_first_factor(user: User, *, remember: bool, next_url: str | None, method: str) -> Response:
    """The answer to a password (or single sign-on) that checked out: the second step when the user has a
    factor (skipped in a remembered browser), else signed in, led to enrolment if a team requires a factor."""
    if two_factor.has_factor(user):
        if remembered.is_remembered(user, request.cookies.get(remembered.COOKIE)):
            audit.record(
                None, "auth.second_factor", request_actor("user", user.email, str(user.id)), target_type="user",
                target_id=user.id, details={"method": "remembered"}, commit=True,
            )  # fmt: skip
            sign_in_browser(user, remember=remember, method=method, second_factor="remembered")
            return redirect(destination(user, next_url))
        session.clear()
        session[PENDING] = {
            "uid": user.id,
            "fp": user.credential_fingerprint,
            "remember": bool(remember),
            "next": safe_next(next_url) or "",
            "method": method,
            "at": int(time.time()),
        }
        return redirect(url_for("two_factor.second_step"))
    enrol = two_factor.required_by_tenant(user)
    sign_in_browser(user, remember=remember, method=method, enrol_required=enrol)
    if enrol:
        flash(_("Your team requires two-factor sign-in. Set up a second factor to continue."), "info")
        return redirect(url_for("two_factor.index"))
    return redirect(destination(user, next_url))


def pending() -> tuple[User, dict[str, Any]] | None:
    """The user who passed the first step in this browser, and the note, while it is fresh."""
    note = session.get(PENDING)
    if not isinstance(note, dict) or not isinstance(note.get("uid"), int):
        return None
    if not isinstance(note.get("at"), int) or time.time() - note["at"] > PENDING_SECONDS:
        session.pop(PENDING, None)
        return None
    user = db.session.get(User, note["uid"])
    if user is None or not user.is_active or note.get("fp") != user.credential_fingerprint:
        session.pop(PENDING, None)
        return None
    return user, note


def finish(user: User, note: dict[str, Any], how: str, *, remember_browser: bool = False) -> Response:
    """Sign the browser in once the second step passed; remember the browser for 30 days if asked."""
    cookie = remembered.remember(user, request.headers.get("User-Agent", "")) if remember_browser else None
    actor = request_actor("user", user.email, str(user.id))
    audit.record(
        None, "auth.second_factor", actor, target_type="user", target_id=user.id,
        details={"method": how, "remember_browser": bool(cookie)},
    )  # fmt: skip
    db.session.commit()
    sign_in_browser(user, remember=bool(note.get("remember")), method=str(note.get("method") or "password"),
                    second_factor=how)  # fmt: skip
    response = redirect(destination(user, note.get("next") or None))
    if cookie:
        set_remember_cookie(response, cookie)
    return response


def set_remember_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        remembered.COOKIE,
        value,
        max_age=remembered.DAYS * 86400,
        httponly=True,
        samesite="Lax",
        secure=current_app.config.get("PORTAL_ENV") == "production",
    )


def _lead(url: str) -> Response:
    if htmx:
        response = Response(status=204)
        response.headers["HX-Redirect"] = quote_location(url)
        return response
    return redirect(url)


def gate() -> Response | None:
    """Before every page: a browser without a required second factor goes to enrolment (see the module)."""
    if request.endpoint in ENROL_ENDPOINTS or request.endpoint == "static" or not current_user.is_authenticated:
        return None
    found = getattr(current_user, "signed_in", None)
    if found is None or found.second_factor:
        return None
    user = current_user._get_current_object()
    platform = request.path == "/platform" or request.path.startswith("/platform/")
    required = found.enrol_required or (platform and user.is_platform_admin)
    if not required:
        principal = current_principal()
        required = principal is not None and principal.tenant.require_two_factor
    if not required:
        return None
    if two_factor.has_factor(user):
        # Enrolled in another browser since this one signed in: this one must pass the second step too.
        sign_out_browser()
        flash(_("Sign in again with your second factor."), "info")
        return _lead(url_for("auth.login", next=request.path))
    flash(_("Set up two-factor sign-in to continue."), "info")
    return _lead(url_for("two_factor.index"))
