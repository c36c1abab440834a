"""The landing page after sign-in: sessions by status, today's traffic and failures, WAHA health."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_login import login_required

from portal.services import dashboard as dashboard_service
from portal.tenancy import require
from portal.web.helpers import page_or_fragment, principal, reads_only

bp = Blueprint("dashboard", __name__)


@bp.route("/")
@reads_only
@login_required
@require("sessions:read")
def index() -> ResponseReturnValue:
    return render_template("dashboard/index.html", summary=dashboard_service.summary(principal().tenant))


@bp.route("/dashboard/health")
@login_required
@require("sessions:read")
def health() -> ResponseReturnValue:
    """WAHA health, loaded after the page so a slow server never delays the dashboard."""
    return page_or_fragment("dashboard/health.html", "dashboard/_health.html", health=dashboard_service.waha_health())
