"""Sign-in plumbing and response hardening: user loader, unauthorised handling, security headers."""

from __future__ import annotations

import hmac
from urllib.parse import quote, unquote, urlsplit

from flask import Flask, Response, redirect, request, session, url_for
from flask_login import AnonymousUserMixin
from werkzeug.wrappers import Response as BaseResponse

from portal.extensions import htmx, login_manager
from portal.models import User

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)


# Characters kept as they are when a redirect target is quoted: the URL's own structure and existing escapes.
_URL_SAFE = "/:?#[]@!$&'()*+,;=%~-._"


def quote_location(url: str) -> str:
    """`url` with everything outside the URL syntax percent-encoded (backslashes, spaces, non-ASCII, control
    characters), fit for a `Location` or `HX-Redirect` header: the browser reads it the way it was checked."""
    return quote(url, safe=_URL_SAFE)


def _local_path(value: str) -> bool:
    if not value.startswith("/") or value[1:2] in ("/", "\\"):
        return False  # "//host" and "/\\host" are scheme-relative URLs to browsers
    if "\\" in value or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def safe_next(target: str | None, default: str | None = None) -> str | None:
    """The `next` address to go to after a form, or `default` when `target` could leave the portal.

    The one rule for every redirect target a request supplies: a path on this site ("/..."), never an
    absolute or scheme-relative URL ("https://x", "//x", "/\\x"), no backslash or control character, also once
    percent-decoded ("/%5Cx", "/%2F%2Fx", "/%09/x"). The answer is quoted for use in a header."""
    if not target or not isinstance(target, str) or len(target) > 2048:
        return default
    value = target
    for _ in range(3):  # a few rounds of decoding: "%255C" is "%5C" to a second decoder
        if not _local_path(value):
            return default
        decoded = unquote(value)
        if decoded == value:
            break
        value = decoded
    else:
        return default
    return quote_location(target)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    login_manager.anonymous_user = AnonymousUserMixin

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        from portal.services import browser_sessions

        row_id, _, rest = user_id.partition(":")
        fingerprint, _, token = rest.partition(":")
        if not (row_id.isascii() and row_id.isdecimal()):
            return None
        # One query: the user, the browser session the cookie opens (signed out here, from another browser, or
        # everywhere: refused), and the membership of the tenant this browser works in (portal.tenancy).
        tenant_id = session.get("tenant_id")
        found = browser_sessions.sign_in_check(
            int(row_id), token, tenant_id if isinstance(tenant_id, int) and not isinstance(tenant_id, bool) else None
        )
        if found is None:
            return None
        user = found.user
        if not user.is_active:
            return None
        # A cookie issued before the last password change no longer signs anyone in.
        if not hmac.compare_digest(fingerprint, user.credential_fingerprint):
            return None
        browser_sessions.keep_alive(found)
        user.browser_token = token
        user.browser_session_id = found.session_id
        user.signed_in = found
        return user

    @login_manager.unauthorized_handler
    def unauthorized() -> BaseResponse:
        from portal.errors import error_response, wants_json

        if wants_json():
            return error_response(401, "unauthorized", "Sign in first.")
        # full_path always ends in "?", even without a query string: only use it when there is one.
        back = request.full_path if request.query_string else request.path
        if htmx:
            response = Response(status=204)
            response.headers["HX-Redirect"] = url_for("auth.login", next=back)
            return response
        return redirect(url_for("auth.login", next=back))

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if app.config["PORTAL_ENV"] == "production":
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
