"""Tenant administration: the /admin entry point, the helpers its pages share, and their registration.

Each area has its own module and blueprint (team, tokens, audit, webhooks, settings); `register(app)` adds them all.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, make_response, redirect, render_template, url_for
from flask_login import login_required

from portal.tenancy import Principal, current_principal

bp = Blueprint("admin", __name__, url_prefix="/admin")

# The admin pages in menu order: (endpoint, label, permission).
SECTIONS = (
    ("admin_team.index", "Team", "team:manage"),
    ("admin_tokens.index", "API tokens", "tokens:manage"),
    ("admin_webhooks.index", "Webhooks", "webhooks:read"),
    ("admin_audit.index", "Audit log", "audit:read"),
    ("admin_settings.index", "Settings", "settings:manage"),
)


def principal() -> Principal:
    """The signed-in member; the `require` decorator has already refused everyone else."""
    found = current_principal()
    if found is None:  # pragma: no cover - `require` runs first
        abort(403)
    return found


def sections_for(who: Principal | None) -> list[tuple[str, str]]:
    """The admin pages `who` may open, as (endpoint, label)."""
    if who is None:
        return []
    registered = current_app.view_functions
    return [
        (endpoint, label) for endpoint, label, permission in SECTIONS if who.can(permission) and endpoint in registered
    ]


def page(template: str, http_status: int = 200, *, no_store: bool = False, **context: Any) -> Response:
    """Render a page; `no_store` keeps secrets shown once out of every cache."""
    response = make_response(render_template(template, **context), http_status)
    if no_store:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/")
@login_required
def index():  # type: ignore[no-untyped-def]
    sections = sections_for(current_principal())
    if not sections:
        abort(403, "Your role has no administration pages.")
    return redirect(url_for(sections[0][0]))


def register(app: Flask) -> None:
    """Register the administration blueprints."""
    from portal.web import audit, settings, team, tokens, webhooks

    app.register_blueprint(bp)
    for module in (team, tokens, webhooks, audit, settings):
        app.register_blueprint(module.bp)

    @app.context_processor
    def admin_sections() -> dict[str, Any]:
        return {"admin_sections": sections_for}
