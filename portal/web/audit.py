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
from portal.web.helpers import day_start, page, principal

bp = Blueprint("admin_audit", __name__, url_prefix="/admin/audit")

PAGE_SIZE = 50
FILTER_ARGS = ("action", "actor", "target", "since", "until")


@bp.get("/")
@login_required
@require("audit:read")
def index() -> ResponseReturnValue:
    who = principal()
    form = AuditFilterForm(request.args)
    valid = form.validate()
    data = form.data if valid else {}
    filters = audit_service.AuditFilters(
        action=(data.get("action") or "").strip() or None,
        actor=(data.get("actor") or "").strip() or None,
        target_id=(data.get("target") or "").strip() or None,
        since=day_start(data.get("since")),
        until=day_start(data.get("until"), plus_days=1),  # "to" includes that whole day
    )
    before = parse_id(request.args.get("before"), big=True)
    events = audit_service.list_events(who.tenant.id, filters, before_id=before, limit=PAGE_SIZE + 1)
    older_url = None
    if len(events) > PAGE_SIZE:
        events = events[:PAGE_SIZE]
        kept: dict[str, Any] = {name: request.args[name] for name in FILTER_ARGS if request.args.get(name)}
        older_url = url_for(".index", before=events[-1].id, **kept)
    filtered = any(request.args.get(name) for name in FILTER_ARGS)
    template = "admin/_audit_rows.html" if htmx and htmx.target == "audit-results" else "admin/audit.html"
    return page(
        template,
        200 if valid else 400,
        form=form,
        events=events,
        older_url=older_url,
        filtered=filtered,
        paged=before is not None,
    )
