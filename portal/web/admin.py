"""Tenant administration's entry point: /admin opens the first administration page the person may use.

The pages themselves are areas of their own (team, tokens, webhooks, audit, settings); their menu is
`helpers.ADMIN_SECTIONS`.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, url_for
from flask_login import login_required
from werkzeug.wrappers import Response

from portal.i18n import gettext as _
from portal.tenancy import current_principal
from portal.web.helpers import admin_sections

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/")
@login_required
def index() -> Response:
    sections = admin_sections(current_principal())
    if not sections:
        abort(403, _("Your role has no administration pages."))
    return redirect(url_for(sections[0][0]))
