"""Sign-in plumbing and response hardening: user loader, unauthorised handling, security headers."""

from __future__ import annotations

import hmac

from flask import Flask, Response, redirect, request, url_for
from flask_login import AnonymousUserMixin

from portal.extensions import db, login_manager
from portal.models import User

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    login_manager.anonymous_user = AnonymousUserMixin

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        row_id, _, fingerprint = user_id.partition(":")
        user = db.session.get(User, int(row_id)) if row_id.isdigit() else None
        if user is None or not user.is_active:
            return None
        # A cookie issued before the last password change no longer signs anyone in.
        return user if hmac.compare_digest(fingerprint, user.credential_fingerprint) else None

    @login_manager.unauthorized_handler
    def unauthorized() -> Response:
        from portal.errors import error_response, wants_json

        if wants_json():
            return error_response(401, "unauthorized", "Sign in first.")
        # full_path always ends in "?", even without a query string: only use it when there is one.
        back = request.full_path if request.query_string else request.path
        if request.headers.get("HX-Request"):
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
