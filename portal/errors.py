"""App-wide error handlers: the JSON error body for API callers, a page (or htmx fragment) for people."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from portal.extensions import db, htmx
from portal.i18n import N_, translated
from portal.i18n import lazy_gettext as _l
from portal.services.errors import ServiceError

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/waha", "/webhooks", "/healthz", "/readyz", "/metrics")

# Stable codes for plain HTTP errors (ARCHITECTURE.md "Errors").
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "waha_unavailable",
}
# The heading of an error page, by status; every other status gets DEFAULT_HEADING.
HEADINGS = {
    403: _l("You can't do that here"),
    404: _l("We couldn't find that"),
    429: _l("Slow down a little"),
    500: _l("Something broke on our side"),
    503: _l("WhatsApp service unavailable"),
}
DEFAULT_HEADING = _l("That did not work")


def wants_json() -> bool:
    if request.path.startswith(JSON_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_body(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON error body every API error uses."""
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "request_id": getattr(g, "request_id", None),
        }
    }


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None, retry_after: int | None = None
) -> Response:
    """JSON, an htmx fragment or an HTML page, whichever the caller reads."""
    if wants_json():
        response = jsonify(error_body(status, code, message, details))
        response.status_code = status
    elif htmx:
        # htmx skips swapping error statuses by default: answer 200 with the message in place
        response = Response(
            render_template("errors/_fragment.html", status=status, message=translated(message), code=code),
            status=200,
        )
    else:
        heading = Markup(str(HEADINGS.get(status, DEFAULT_HEADING)))  # our own words: apostrophes stay as typed
        html = render_template(
            "errors/generic.html",
            status=status,
            heading=heading,
            message=translated(message),
            code=code,
            details=details or {},
        )
        response = Response(html, status=status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def handle_service_error(exc: ServiceError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.retry_after)

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = HTTP_CODES.get(status, "error")
        message = exc.description or exc.name
        retry_after = None
        if status == 429:
            message = N_("Too many requests; slow down and retry later.")
            retry_after = _limit_retry_after()
        if status == 400 and "CSRF" in (exc.description or ""):
            code = "csrf_failed"
            message = N_("The form expired or was sent from elsewhere. Reload the page and try again.")
        response = error_response(status, code, message, retry_after=retry_after)
        # Headers the exception carries belong to the answer: Allow on a 405 (RFC 9110), WWW-Authenticate...
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", N_("Something went wrong on our side. It has been logged."))


def _limit_retry_after() -> int:
    """Seconds until the exceeded Flask-Limiter window resets (60 when unknown)."""
    from portal.extensions import limiter

    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, int(current.reset_at - time.time()))
