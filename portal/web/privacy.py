"""Administration > Data & privacy (/admin/privacy): the retention the tenant runs with, the whole-tenant export
(requested here, built by a job, downloaded until its link expires) and the tenant's deletion with a grace period
(owners only). An owner whose tenant is scheduled for deletion (and so inactive) cancels it at
/admin/privacy/deletions, which needs no active tenant."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from portal.i18n import day_filter, translated
from portal.i18n import gettext as _
from portal.models import utcnow
from portal.services import privacy, retention
from portal.services.errors import NotFound, ServiceError
from portal.storage.serving import send_stored
from portal.tenancy import require
from portal.web.forms import ConfirmForm, DeleteTenantForm
from portal.web.helpers import apply_service_error, page, principal, redirect_to, user_actor

bp = Blueprint("admin_privacy", __name__, url_prefix="/admin/privacy")
PRIVACY = "contacts:privacy"
DELETE = "tenant:delete"


PENDING_EXPORT = ("queued", "running")


def _exports() -> dict[str, Any]:
    exports = privacy.list_exports(principal().tenant)
    return {
        "exports": exports,
        "exports_pending": any(e.state in PENDING_EXPORT for e in exports),
        "now": utcnow(),
    }


def _render(form: DeleteTenantForm | None = None, status: int = 200) -> ResponseReturnValue:
    who = principal()
    return page(
        "admin/privacy.html",
        status,
        tenant=who.tenant,
        kept=retention.of_tenant(who.tenant),
        limits=retention.platform_days(),
        **_exports(),
        export_form=ConfirmForm(formdata=None),
        delete_form=(form or DeleteTenantForm(formdata=None)) if who.can(DELETE) else None,
        grace_days=current_app.config["TENANT_DELETION_GRACE_DAYS"],
    )


@bp.get("/")
@login_required
@require(PRIVACY)
def index() -> ResponseReturnValue:
    return _render()


@bp.get("/exports")
@login_required
@require(PRIVACY)
def exports() -> ResponseReturnValue:
    """The exports' list alone, for its own refresh; 286 (htmx: stop polling) once none is pending."""
    context = _exports()
    return page("admin/_exports.html", 200 if context["exports_pending"] else 286, **context)


@bp.post("/exports")
@login_required
@require(PRIVACY)
def request_export() -> ResponseReturnValue:
    who = principal()
    if not ConfirmForm().validate_on_submit():
        flash(_("The form expired; try again."), "error")
        return redirect_to(url_for(".index"))
    try:
        privacy.request_export(who.tenant, who.actor())
    except ServiceError as exc:
        flash(translated(exc.message), "error")
    else:
        flash(_("The export is being built; it appears below when it is ready."), "info")
    return redirect_to(url_for(".index"))


@bp.get("/exports/<int(big=True):export_id>/download")
@login_required
@require(PRIVACY)
def download(export_id: int) -> ResponseReturnValue:
    who = principal()
    stored = privacy.export_file(who.tenant, export_id, who.actor())
    missing = NotFound(_("The export's file is gone."), code="export_not_found")
    return send_stored(stored, as_attachment=True, missing=missing, cache_control="private, no-store")


@bp.post("/deletion")
@login_required
@require(DELETE)
def request_deletion() -> ResponseReturnValue:
    who = principal()
    form = DeleteTenantForm()
    if not form.validate_on_submit():
        return _render(form, 400)
    try:
        tenant = privacy.request_deletion(who.tenant, who.actor(), form.confirm.data or "")
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _render(form, exc.status)
    flash(
        _(
            "%(name)s is deactivated and will be deleted on %(date)s. You can cancel until then.",
            name=tenant.name,
            date=day_filter(tenant.deletion_scheduled_for),
        ),
        "success",
    )
    return redirect_to(url_for(".deletions"))


@bp.get("/deletions")
@login_required
def deletions() -> ResponseReturnValue:
    """The tenants the signed-in user owns that are scheduled for deletion (they are inactive, so no tenant is
    needed to open this page)."""
    return page(
        "admin/deletions.html", tenants=privacy.scheduled_for_owner(current_user), form=ConfirmForm(formdata=None)
    )


@bp.post("/deletions/<int:tenant_id>/cancel")
@login_required
def cancel_deletion(tenant_id: int) -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        flash(_("The form expired; try again."), "error")
        return redirect_to(url_for(".deletions"))
    tenant = privacy.owned_tenant(current_user, tenant_id)
    try:
        privacy.cancel_deletion(tenant, user_actor())
    except ServiceError as exc:
        flash(translated(exc.message), "error")
        return redirect_to(url_for(".deletions"))
    flash(_("The deletion of %(name)s is cancelled; it is active again.", name=tenant.name), "success")
    return redirect_to(url_for(".deletions"))
