"""The people's side: server-rendered pages with htmx fragments, one blueprint per area.

Every page blueprint is registered here, from one list; area modules share only `portal.web.helpers` and the
forms, never each other.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, url_for
from werkzeug.wrappers import Response

from portal.web import (
    account,
    admin,
    audit,
    auth,
    campaigns,
    contact_data,
    contacts,
    dashboard,
    exports,
    inbox,
    inbox_actions,
    inbox_thread,
    messages,
    optouts,
    outreach,
    outreach_settings,
    platform,
    platform_plans,
    privacy,
    quick_replies,
    servers,
    sessions,
    settings,
    team,
    tokens,
    two_factor,
    two_factor_admin,
    usage,
    webhooks,
    wording,
)
from portal.web.helpers import admin_sections, begin_reads_only, platform_sections
from portal.web.second_factor import gate

# Every page blueprint, in registration order.
BLUEPRINTS = (
    auth.bp,
    dashboard.bp,
    sessions.bp,
    messages.bp,
    inbox.bp,  # the inbox page and its chat list
    inbox_thread.bp,  # the inbox's thread pane
    inbox_actions.bp,  # and the actions on its messages
    contacts.bp,  # the people the tenant talks to
    contact_data.bp,  # a contact's data: export and erase
    outreach.bp,  # the send queue of each session and the scheduled messages
    campaigns.bp,  # one message to many, through the send queue
    optouts.bp,  # the numbers that opted out
    admin.bp,  # the /admin entry point; the administration pages follow
    team.bp,
    tokens.bp,
    webhooks.bp,
    quick_replies.bp,
    audit.bp,
    settings.bp,
    outreach_settings.bp,
    privacy.bp,  # data & privacy: retention, the tenant's export and deletion
    account.bp,
    two_factor.bp,  # the second step of sign-in, passkey sign-in, your factors
    two_factor_admin.bp,  # resetting a member's lost factors
    platform.bp,
    servers.bp,  # platform area: WAHA servers
    exports.bp,  # CSV exports of the list pages (messages, audit, deliveries, contacts)
    platform_plans.bp,  # platform area: plans, usage across tenants, a tenant's plan
    usage.bp,  # the tenant's plan usage
)


def init_app(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.add_url_rule("/favicon.ico", "favicon", _favicon)
    app.context_processor(_menus)
    pages = {blueprint.name for blueprint in BLUEPRINTS}
    # first of all the request's hooks: a read-only page's session is on the autocommit engine before any statement
    app.before_request_funcs.setdefault(None, []).insert(0, begin_reads_only)

    @app.before_request
    def second_factor_gate() -> Response | None:
        from flask import request

        return gate() if request.blueprint in pages else None

    wording.init_app(app)


def _menus() -> dict[str, Any]:
    return {"admin_sections": admin_sections, "platform_sections": platform_sections}


def _favicon() -> Response:
    """Browsers and tools ask for /favicon.ico whatever the page links; point them at the SVG icon."""
    response = redirect(url_for("static", filename="img/favicon.svg"), code=302)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
