"""The people's side: server-rendered pages with htmx fragments, one blueprint per area."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from portal.web import account, admin, auth, dashboard, platform
    from portal.web import messages, sessions  # sessions and messaging pages

    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(sessions.bp)
    app.register_blueprint(messages.bp)
    admin.register(app)  # team, tokens, webhooks, audit log, settings
    app.register_blueprint(account.bp)
    app.register_blueprint(platform.bp)
    from portal.web import servers

    app.register_blueprint(servers.bp)  # platform area: WAHA servers
