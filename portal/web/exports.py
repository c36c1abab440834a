"""CSV exports of the list pages, each with the filters its page shows (the pages' "Export CSV" links carry them):
the message log, the audit log, the webhook delivery log and the contacts. Each needs the permission of its page,
streams as it is read (portal.streaming) and is audited when it starts."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, request
from flask.typing import ResponseReturnValue
from flask_login import login_required
from wtforms import Form

from portal.converters import parse_id
from portal.i18n import gettext as _
from portal.services import exports
from portal.services.errors import NotFound
from portal.streaming import csv_response
from portal.tenancy import require
from portal.web.admin_forms import AuditFilterForm
from portal.web.forms import MessageFilterForm
from portal.web.helpers import day_start, principal
from portal.web.list_filters import audit_filters, log_filters

bp = Blueprint("exports", __name__)


def _refuse(form: Form) -> None:
    """400 naming the first filter that could not be read (the page's link only carries filters it accepted)."""
    problems = [f"{form[name].label.text}: {errors[0]}" for name, errors in form.errors.items() if errors]
    abort(400, _("These filters cannot be exported: %(problems)s", problems="; ".join(problems)))


def _day(name: str) -> date | None:
    raw = request.args.get(name) or None
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        abort(400, _("%(name)s must be a date (YYYY-MM-DD).", name=name))


@bp.get("/messages/export")
@login_required
@require("messages:read")
def messages() -> ResponseReturnValue:
    """The message log as CSV, with the log page's filters."""
    form = MessageFilterForm(formdata=request.args)
    if not form.validate():
        _refuse(form)
    who = principal()
    return csv_response(exports.export_messages(who.tenant, who.actor(), log_filters(form)))


@bp.get("/admin/audit/export")
@login_required
@require("audit:read")
def audit() -> ResponseReturnValue:
    """The audit log as CSV, with the audit page's filters."""
    form = AuditFilterForm(request.args)
    if not form.validate():
        _refuse(form)
    who = principal()
    return csv_response(exports.export_audit(who.tenant, who.actor(), audit_filters(form.data)))


@bp.get("/admin/webhooks/deliveries/export")
@login_required
@require("webhooks:read")
def deliveries() -> ResponseReturnValue:
    """The delivery log as CSV: every endpoint's or one's (`endpoint_id`), one status, from / to a day."""
    endpoint_id = None
    if request.args.get("endpoint_id"):
        endpoint_id = parse_id(request.args["endpoint_id"])
        if endpoint_id is None:
            raise NotFound(_("No such webhook endpoint."), code="endpoint_not_found")
    since, until = _day("since"), _day("until")
    who = principal()
    export = exports.export_deliveries(
        who.tenant,
        who.actor(),
        endpoint_id=endpoint_id,
        status=request.args.get("status") or None,
        since=day_start(since),
        until=day_start(until, plus_days=1),
    )
    return csv_response(export)


@bp.get("/contacts/export")
@login_required
@require("messages:read")
def contacts() -> ResponseReturnValue:
    """The contacts as CSV, with the contacts page's search."""
    who = principal()
    q = (request.args.get("q") or "").strip() or None
    return csv_response(exports.export_contacts(who.tenant, who.actor(), q=q))
