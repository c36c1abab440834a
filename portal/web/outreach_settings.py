"""Administration > Outreach: the tenant's time zone, quiet hours and the gap between campaign messages."""

from __future__ import annotations

from zoneinfo import available_timezones

from flask import Blueprint, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import FloatField, SelectField, TimeField
from wtforms.validators import InputRequired, NumberRange, Optional

from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.services import outreach
from portal.services.errors import ServiceError
from portal.tenancy import require
from portal.web.helpers import apply_service_error, page, principal

bp = Blueprint("admin_outreach", __name__, url_prefix="/admin/outreach")


class OutreachForm(FlaskForm):
    time_zone = SelectField(_l("Time zone"), validate_choice=False)
    quiet_start = TimeField(_l("Quiet hours from"), validators=[Optional()])
    quiet_end = TimeField(_l("until"), validators=[Optional()])
    gap_min = FloatField(_l("Shortest gap (seconds)"), validators=[InputRequired(), NumberRange(min=0, max=3600)])
    gap_max = FloatField(_l("Longest gap (seconds)"), validators=[InputRequired(), NumberRange(min=0, max=3600)])


@bp.route("/", methods=["GET", "POST"])
@login_required
@require("settings:manage")
def index() -> ResponseReturnValue:
    who = principal()
    current = outreach.outreach_settings(who.tenant.id)
    form = OutreachForm(obj=current)
    form.time_zone.choices = [(z, z) for z in sorted(available_timezones())]
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                outreach.update_outreach_settings(
                    who.tenant,
                    who.actor(),
                    time_zone=form.time_zone.data,
                    quiet_start=form.quiet_start.data,
                    quiet_end=form.quiet_end.data,
                    gap_min=form.gap_min.data,
                    gap_max=form.gap_max.data,
                )
            except ServiceError as exc:
                apply_service_error(form, exc)
                status = exc.status
            else:
                flash(_("Outreach settings saved."), "success")
                return redirect(url_for(".index"))
    return page("admin/outreach.html", status, form=form)
