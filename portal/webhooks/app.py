"""The lean WSGI app of /webhooks: routing, the app context, errors as JSON, request id, access log, metrics.

What it leaves out, being no page: the cookie session, CSRF, Flask-Login's user loading, Flask-Limiter's request
filtering, the HTML security headers, the template context. The answers are those of the Flask app before:
the same JSON error body and stable codes (400 bad_json / bad_event, 401 bad_signature, 404 session_not_found
or not_found, 405 with Allow, 413 payload_too_large, 500 internal_error), `X-Request-ID`, one access line with
the session, and `portal_http_requests_total` / `portal_http_request_duration_seconds` under the route
template `/webhooks/waha`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, g
from flask.globals import _cv_app
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from portal.errors import HTTP_CODES, error_body
from portal.extensions import db
from portal.metrics.http import HTTP_METHODS, http_duration, http_requests
from portal.services.errors import ServiceError
from portal.telemetry import _VALID_ID, REQUEST_ID_HEADER, log_access, log_context
from portal.webhooks import waha

log = logging.getLogger("portal.webhooks")

# Each handler answers 200 with the JSON body it returns, or raises (the error answer is built by WebhookApp).
_HANDLERS: dict[str, Callable[[Request], bytes]] = {"waha": waha.receive}


class WebhookApp:
    """Answers the requests under `prefix` with the Flask app's context, but none of its page hooks."""

    def __init__(self, app: Flask, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.urls = Map([Rule("/waha", endpoint="waha", methods=["POST"])])
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        request = Request(environ)
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        # A test (or a CLI command) may hold the app's context open: use it, as Flask does for its requests.
        current = _cv_app.get(None)
        context = None if current is not None and current.app is self.app else self.app.app_context()
        if context is not None:
            context.push()
        try:
            vars(g).clear()  # every request starts from an empty `g`, as in the Flask app
            g.request_id = request_id
            route = "unmatched"
            response: Response | None = None
            with log_context(request_id=request_id, session=request.args.get("session") or None):
                try:
                    if environ.get("PATH_INFO") == "/waha" and environ.get("REQUEST_METHOD") == "POST":
                        endpoint = "waha"  # the one route, without building a URL adapter per request
                    else:
                        endpoint, _ = self.urls.bind_to_environ(environ).match()
                    route = self.prefix + "/" + endpoint
                    body = _HANDLERS[endpoint](request)
                    status = 200
                except Exception as exc:
                    response = self._error(exc)
                    status = response.status_code
                    response.headers[REQUEST_ID_HEADER] = request_id
                    response.headers["X-Content-Type-Options"] = "nosniff"
                elapsed = time.perf_counter() - started
                method = request.method if request.method in HTTP_METHODS else "OTHER"
                counted, timed = self._metrics(method, route, status)
                counted.inc()
                timed.observe(elapsed)
                log_access(request.method, self.prefix + request.path, status, elapsed * 1000)
        finally:
            if context is not None:
                context.pop()  # removes the database session (Flask-SQLAlchemy's teardown)
        if response is not None:
            return response(environ, start_response)
        # The answer of every accepted webhook, written straight to the server: a Response object would cost more
        # than the rest of this wrapper.
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                (REQUEST_ID_HEADER, request_id),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [body]

    def _metrics(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The request counter and duration histogram of one (method, route, status), looked up once each: the
        label sets are few (one route, a handful of statuses)."""
        key = (method, route, status)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (
                http_requests.labels(method, route, str(status)),
                http_duration.labels(method, route),
            )
        return found

    def _error(self, exc: Exception) -> Response:
        headers: dict[str, str] = {}
        retry_after = None
        if isinstance(exc, ServiceError):
            status, code, message, details = exc.status, exc.code, exc.message, exc.details
            retry_after = exc.retry_after
        elif isinstance(exc, RequestEntityTooLarge):
            status, code, message, details = 413, "payload_too_large", "The body is too large.", {}
        elif isinstance(exc, HTTPException):
            status = exc.code or 500
            code, message, details = HTTP_CODES.get(status, "error"), exc.description or exc.name, {}
            if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
                headers["Allow"] = ", ".join(exc.valid_methods)
            elif isinstance(exc, NotFound):
                message = "No such webhook receiver."
        else:
            db.session.rollback()
            log.exception("unhandled error in the webhook receiver")
            status, code, message, details = 500, "internal_error", "Something went wrong on our side.", {}
        response = Response(
            json.dumps(error_body(status, code, message, details)), status=status, mimetype="application/json"
        )
        for name, value in headers.items():
            response.headers[name] = value
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response
