"""Tenant settings: sending pace, retention, read receipts, and (platform admins only) the session limit."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.services import quotas, retention, tenant_admin
from portal.services.errors import ServiceError
from portal.tenancy import require
from portal.web.admin_forms import SettingsForm
from portal.web.helpers import apply_service_error, page, principal

bp = Blueprint("admin_settings", __name__, url_prefix="/admin/settings")

LABELS = {
    "send_rate_per_minute": _l("messages per minute"),
    "retention_messages_days": _l("message retention"),
    "retention_events_days": _l("event retention"),
    "retention_media_days": _l("media retention"),
    "max_sessions": _l("session limit"),
    "read_receipts": _l("read receipts"),
    "require_two_factor": _l("two-factor sign-in required"),
}


def _form() -> SettingsForm:
    tenant = principal().tenant
    form = SettingsForm(obj=tenant)
    if not current_user.is_platform_admin:
        # The session limit is what the platform sells; a tenant's own admins see it but cannot raise it.
        del form.max_sessions
    return form


@bp.route("/", methods=["GET", "POST"])
@login_required
@require("settings:manage")
def index() -> ResponseReturnValue:
    who = principal()
    form = _form()
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            values = {name: form[name].data for name in LABELS if name in form}
            try:
                changes = tenant_admin.update_settings(who.tenant, who.actor(), **values)
            except ServiceError as exc:
                apply_service_error(form, exc)
                status = exc.status
            else:
                if changes:
                    flash(_("Saved: %(changes)s.", changes=", ".join(str(LABELS[name]) for name in changes)), "success")
                else:
                    flash(_("Nothing changed."), "info")
                return redirect(url_for(".index"))
    session_limit = quotas.limit_of(who.tenant, "sessions")
    return page(
        "admin/settings.html",
        status,
        form=form,
        tenant=who.tenant,
        session_limit=session_limit,
        limits=retention.platform_days(),
    )
