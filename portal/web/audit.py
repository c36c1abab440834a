"""The audit log: filters and keyset pagination, newest first."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from portal.converters import parse_id
from portal.extensions import htmx
from portal.services import audit as audit_service
from portal.tenancy import require
from portal.web.admin_forms import AuditFilterForm
from portal.web.helpers import page, principal, reads_only
from portal.web.list_filters import audit_filters

bp = Blueprint("admin_audit", __name__, url_prefix="/admin/audit")

PAGE_SIZE = 50
FILTER_ARGS = ("action", "actor", "target", "since", "until")


@bp.get("/")
@reads_only
@login_required
@require("audit:read")
def index() -> ResponseReturnValue:
    who = principal()
    form = AuditFilterForm(request.args)
    valid = form.validate()
    data = form.data if valid else {}
    filters = audit_filters(data)
    before = parse_id(request.args.get("before"), big=True)
    events = audit_service.list_events(who.tenant.id, filters, before_id=before, limit=PAGE_SIZE + 1)
    older_url = None
    kept: dict[str, Any] = {name: request.args[name] for name in FILTER_ARGS if request.args.get(name)}
    if len(events) > PAGE_SIZE:
        events = events[:PAGE_SIZE]
        older_url = url_for(".index", before=events[-1].id, **kept)
    filtered = any(request.args.get(name) for name in FILTER_ARGS)
    export_url = url_for("exports.audit", **kept) if valid else None
    template = "admin/_audit_rows.html" if htmx and htmx.target == "audit-results" else "admin/audit.html"
    return page(
        template,
        200 if valid else 400,
        form=form,
        events=events,
        older_url=older_url,
        filtered=filtered,
        paged=before is not None,
        export_url=export_url,
    )
