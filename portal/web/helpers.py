"""What the page blueprints share: the principal of a view, rendering and redirects (htmx-aware), service errors
written onto the form that caused them, the area menus, and the door of the platform area.

Area modules (sessions, messages, admin pages, ...) import from here and from the forms, never from each other.
Whether a request comes from htmx is read from one place: `portal.extensions.htmx` (flask-htmx).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, make_response, redirect, render_template, request
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from portal.dbengines import begin_autocommit
from portal.extensions import db, htmx
from portal.i18n import lazy_gettext as _l
from portal.i18n import translated
from portal.security import quote_location
from portal.services.audit import Actor
from portal.services.errors import ServiceError
from portal.tenancy import Principal, current_principal, request_actor
from portal.web.forms import ConfirmForm

# htmx stops polling when a response carries this status (and still swaps its body in).
STOP_POLLING = 286

# The administration pages in menu order: (endpoint, label, permission).
ADMIN_SECTIONS = (
    ("admin_team.index", _l("Team"), "team:manage"),
    ("admin_tokens.index", _l("API tokens"), "tokens:manage"),
    ("admin_webhooks.index", _l("Webhooks"), "webhooks:read"),
    ("admin_quick_replies.index", _l("Quick replies"), "quick_replies:manage"),
    ("admin_audit.index", _l("Audit log"), "audit:read"),
    ("admin_settings.index", _l("Settings"), "settings:manage"),
    ("admin_outreach.index", _l("Outreach"), "settings:manage"),
    ("usage.index", _l("Plan usage"), "settings:manage"),
    ("admin_privacy.index", _l("Data & privacy"), "contacts:privacy"),
)
# The platform area's pages in menu order: (endpoint, label).
PLATFORM_SECTIONS = (
    ("platform.tenants", _l("Tenants")),
    ("platform_plans.plans", _l("Plans")),
    ("platform_plans.usage", _l("Usage")),
    ("servers.index", _l("WAHA servers")),
)


READS_ONLY = "portal_reads_only"  # the attribute `reads_only` sets on a view


def reads_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """For a page that only reads (PostgreSQL): its statements run without a surrounding transaction.

    The sign-in check, the page's queries and the header badge then cost no BEGIN and ROLLBACK round trips; at
    READ COMMITTED each statement of a transaction takes its own snapshot anyway, so the reads lose nothing. The
    browser session's last use (one UPDATE, once a minute) commits itself. The mark is read by
    `begin_reads_only`, the web app's first hook, so the request's session is on the autocommit engine
    (portal.dbengines) before its first statement, the sign-in check's."""
    setattr(view, READS_ONLY, True)
    return view


def begin_reads_only() -> None:
    """Before every other hook of a request: a page marked `reads_only` reads on the autocommit engine."""
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, READS_ONLY, False):
        begin_autocommit(db.session())


def principal() -> Principal:
    """The principal of a view behind `require()`, which has refused everyone without one."""
    found = current_principal()
    if found is None:  # pragma: no cover - `require` runs first
        abort(403)
    return found


def user_actor() -> Actor:
    """The audit actor of the signed-in person, for pages outside a tenant (account, platform)."""
    return request_actor("user", current_user.email, str(current_user.id))


def day_start(day: date | None, plus_days: int = 0) -> datetime | None:
    """The start (UTC) of a day a date filter names, `plus_days` later: a "to" date includes its whole day."""
    if day is None:
        return None
    return datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=plus_days)


def page(template: str, http_status: int = 200, *, no_store: bool = False, **context: Any) -> Response:
    """Render a page; `no_store` keeps secrets shown once out of every cache."""
    response = make_response(render_template(template, **context), http_status)
    if no_store:
        response.headers["Cache-Control"] = "no-store"
    return response


def confirm_page(form: FlaskForm | None = None, **context: Any) -> Response:
    """The page behind a button that changes something for good (templates/confirm.html has the context)."""
    return page("confirm.html", form=form or ConfirmForm(), **context)


def page_or_fragment(template: str, fragment: str, **context: Any) -> str:
    """The fragment alone for htmx (the page includes it), the whole page otherwise."""
    return render_template(fragment if htmx else template, **context)


def redirect_to(url: str) -> Response:
    """A 303 for browsers, an HX-Redirect header for htmx (which would otherwise swap the next page in)."""
    if htmx:
        response = Response(status=204)
        response.headers["HX-Redirect"] = quote_location(url)
        return response
    return redirect(quote_location(url), code=303)


def apply_service_error(form: FlaskForm, exc: ServiceError, aliases: dict[str, str] | None = None) -> None:
    """Put a service's refusal next to the fields it names, or at the top of the form."""
    aliases = aliases or {}
    placed = False
    for item in (exc.details or {}).get("fields", []) or []:
        name = aliases.get(str(item.get("field")), str(item.get("field")))
        field: Any = form._fields.get(name)
        if field is not None and name not in ("csrf_token",):
            field.errors = list(field.errors) + [translated(item.get("message") or exc.message)]
            placed = True
    if not placed:
        alias = aliases.get(f"code:{exc.code}")
        field = form._fields.get(alias) if alias else None
        if field is not None:
            field.errors = list(field.errors) + [translated(exc.message)]
        else:
            form.form_errors.append(translated(exc.message))


def admin_sections(who: Principal | None) -> list[tuple[str, str]]:
    """The administration pages `who` may open, as (endpoint, label)."""
    if who is None:
        return []
    registered = current_app.view_functions
    return [
        (endpoint, label)
        for endpoint, label, permission in ADMIN_SECTIONS
        if who.can(permission) and endpoint in registered
    ]


def platform_sections() -> list[tuple[str, str]]:
    """The platform area's pages, as (endpoint, label)."""
    return [(endpoint, label) for endpoint, label in PLATFORM_SECTIONS if endpoint in current_app.view_functions]


def platform_admins_only(bp: Blueprint, refusal: str) -> None:
    """Every page of `bp` is for platform admins: others get 403 with `refusal`, the signed-out the sign-in page."""

    @bp.before_request
    @login_required
    def admit_platform_admins() -> None:
        if not current_user.is_platform_admin:
            abort(403, refusal)
