"""The landing page after sign-in: sessions by status, today's traffic and failures, WAHA health."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from portal.services import dashboard as dashboard_service
from portal.tenancy import require
from portal.web.helpers import is_htmx, principal

bp = Blueprint("dashboard", __name__)


@bp.route("/")
@login_required
@require("sessions:read")
def index():  # type: ignore[no-untyped-def]
    return render_template("dashboard/index.html", summary=dashboard_service.summary(principal().tenant))


@bp.route("/dashboard/health")
@login_required
@require("sessions:read")
def health():  # type: ignore[no-untyped-def]
    """WAHA health, loaded after the page so a slow server never delays the dashboard."""
    template = "dashboard/_health.html" if is_htmx() else "dashboard/health.html"
    return render_template(template, health=dashboard_service.waha_health())
