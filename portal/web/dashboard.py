"""The landing page after sign-in."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from portal.tenancy import require

bp = Blueprint("dashboard", __name__)


@bp.route("/")
@login_required
@require("sessions:read")
def index():  # type: ignore[no-untyped-def]
    return render_template("dashboard/index.html")
