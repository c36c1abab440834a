"""Inbound webhooks from WAHA servers, served by a lean WSGI app mounted at /webhooks.

A webhook carries no cookie and no CSRF token, nobody signs in with it, it is not rate-limited (WAHA retries what
is refused) and its JSON answer needs no HTML security headers: the receiver skips the page app's hooks and
answers from `portal.webhooks.app.WebhookApp`, which `mount` puts in front of the Flask app (werkzeug's
DispatcherMiddleware, inside the trusted-proxy fix). It keeps what a webhook does need: the app context
(database, Redis, settings), the request id, the access log line and the HTTP metrics.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

PREFIX = "/webhooks"


def mount(app: Flask) -> None:
    """Serve PREFIX with the lean receiver; every other path goes to the Flask app as before."""
    from portal.webhooks.app import WebhookApp

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {PREFIX: WebhookApp(app, PREFIX)})  # type: ignore[method-assign]  # Flask's documented way to add WSGI middleware
