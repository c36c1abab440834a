"""The platform admin's plans, the usage table across tenants (and its CSV), and a tenant's plan and overrides."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.i18n import translated
from portal.services import quotas, tenant_admin
from portal.services.errors import ServiceError
from portal.web.helpers import page, platform_admins_only, user_actor

bp = Blueprint("platform_plans", __name__, url_prefix="/platform")
platform_admins_only(bp, _l("Only platform admins can open this area."))


@bp.get("/plans")
def plans() -> ResponseReturnValue:
    headings = [_("Plan"), *(_(q.label) for q in quotas.QUOTAS)]
    return page("platform/plans.html", plans=quotas.list_plans(), quota_list=quotas.QUOTAS, headings=headings)


@bp.route("/plans/new", methods=["GET", "POST"])
@bp.route("/plans/<int:plan_id>", methods=["GET", "POST"])
def plan(plan_id: int | None = None) -> ResponseReturnValue:
    current = quotas.get_plan(plan_id) if plan_id is not None else None
    error: ServiceError | None = None
    if request.method == "POST":
        try:
            saved = quotas.save_plan(
                plan_id,
                request.form.get("name"),
                request.form,
                user_actor(),
                default=request.form.get("is_default") == "1",
            )
        except ServiceError as exc:
            error = exc
        else:
            flash(_("Plan %(name)s saved.", name=saved.name), "success")
            return redirect(url_for(".plans"), code=303)
    return page(
        "platform/plan_form.html",
        error.status if error else 200,
        plan=current,
        error=error,
        form=request.form if request.method == "POST" else None,
        quota_list=quotas.QUOTAS,
    )


@bp.post("/tenants/<int:tenant_id>/plan")
def tenant_plan(tenant_id: int) -> ResponseReturnValue:
    tenant = tenant_admin.get_tenant(tenant_id)
    try:
        quotas.set_tenant_plan(tenant, request.form.get("plan_id"), request.form, user_actor())
    except ServiceError as exc:
        flash(translated(exc.message), "error")
    else:
        flash(_("Plan and limits of %(name)s saved.", name=tenant.name), "success")
    return redirect(url_for("platform.tenant_detail", tenant_id=tenant_id, _anchor="plan"), code=303)


@bp.get("/usage")
def usage() -> ResponseReturnValue:
    return page("platform/usage.html", lines=quotas.all_tenants())


@bp.get("/usage.csv")
def usage_csv() -> ResponseReturnValue:
    body = quotas.csv_of(quotas.all_tenants())
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=usage.csv", "Cache-Control": "no-store"},
    )
