"""The tenant's plan usage: this month, a bar per day, per session, and each limit with what is used."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue
from flask_login import login_required

from portal.services import quotas
from portal.tenancy import require
from portal.web.helpers import page, principal

bp = Blueprint("usage", __name__, url_prefix="/usage")


@bp.get("/")
@login_required
@require("settings:manage")
def index() -> ResponseReturnValue:
    return page("usage/index.html", usage=quotas.tenant_usage(principal().tenant))
