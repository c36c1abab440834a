"""The people's side: server-rendered pages with htmx fragments, one blueprint per area."""

from __future__ import annotations

from flask import Flask, Response, redirect, url_for


def init_app(app: Flask) -> None:
    from portal.web import account, admin, auth, dashboard, messages, platform, sessions  # sessions and messaging pages

    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(sessions.bp)
    app.register_blueprint(messages.bp)
    admin.register(app)  # team, tokens, webhooks, audit log, settings
    app.register_blueprint(account.bp)
    app.register_blueprint(platform.bp)
    from portal.web import servers

    app.register_blueprint(servers.bp)  # platform area: WAHA servers
    app.add_url_rule("/favicon.ico", "favicon", _favicon)
    from portal.web import wording

    wording.init_app(app)


def _favicon() -> Response:
    """Browsers and tools ask for /favicon.ico whatever the page links; point them at the SVG icon."""
    response = redirect(url_for("static", filename="img/favicon.svg"), code=302)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
