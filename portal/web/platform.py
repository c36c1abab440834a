"""The platform admin area: every tenant, creating and deactivating tenants, and their members.

Only users with `is_platform_admin` get in; everyone else gets 403 on every page and form here.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.i18n import translated
from portal.permissions import ROLES
from portal.services import privacy, quotas, retention, tenant_admin
from portal.services import team as team_service
from portal.services import tenants as tenants_service
from portal.services.accounts import public_url
from portal.services.errors import ServiceError
from portal.web.admin_forms import InviteForm, TenantForm
from portal.web.forms import ConfirmForm, choices
from portal.web.helpers import apply_service_error, confirm_page, page, platform_admins_only, user_actor
from portal.web.wording import role_label

bp = Blueprint("platform", __name__, url_prefix="/platform")
platform_admins_only(bp, _l("Only platform admins can open this area."))


def _accept_url(token: str) -> str:
    return public_url("account.accept_invitation", token=token)


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for(".tenants"))


@bp.get("/tenants")
def tenants() -> ResponseReturnValue:
    return page(
        "platform/tenants.html",
        rows=tenant_admin.list_tenants(),
        plan_names={plan.id: plan.name for plan in quotas.list_plans()},
        retention=retention.platform_days(),
        form=ConfirmForm(formdata=None),
    )


@bp.post("/tenants/<int:tenant_id>/cancel-deletion")
def cancel_deletion(tenant_id: int) -> ResponseReturnValue:
    """A platform admin cancels a tenant's scheduled deletion during its grace period."""
    tenant = tenant_admin.get_tenant(tenant_id)
    if not ConfirmForm().validate_on_submit():
        flash(_("The form expired; try again."), "error")
    else:
        try:
            privacy.cancel_deletion(tenant, user_actor())
        except ServiceError as exc:
            flash(translated(exc.message), "error")
        else:
            flash(_("The deletion of %(name)s is cancelled; it is active again.", name=tenant.name), "success")
    return redirect(url_for(".tenants"), code=303)


@bp.route("/tenants/new", methods=["GET", "POST"])
def create_tenant() -> ResponseReturnValue:
    form = TenantForm()
    if request.method == "GET":
        form.max_sessions.data = None  # empty: the default plan's limit
        return page("platform/tenant_new.html", form=form)
    if not form.validate_on_submit():
        return page("platform/tenant_new.html", 400, form=form)
    try:
        tenant = tenants_service.create_tenant(
            form.slug.data, form.name.data, user_actor(), max_sessions=form.max_sessions.data
        )
    except ServiceError as exc:
        apply_service_error(form, exc)
        return page("platform/tenant_new.html", exc.status, form=form)
    issued = None
    if form.owner_email.data:
        try:
            issued = team_service.invite_member(
                tenant,
                form.owner_email.data,
                "owner",
                user_actor(),
                actor_role="owner",
                invited_by_id=current_user.id,
                accept_url=_accept_url,
            )
        except ServiceError as exc:
            flash(
                _(
                    "The tenant exists, but the owner could not be invited: %(message)s",
                    message=translated(exc.message),
                ),
                "error",
            )
    flash(_("Tenant %(name)s created.", name=tenant.name), "success")
    if issued is not None:
        _flash_mailed(issued)
    return redirect(url_for(".tenant_detail", tenant_id=tenant.id), code=303)


def _flash_mailed(issued: team_service.IssuedInvitation) -> None:
    # The link goes to the invited address only (services/team.py): the inviter never sees it.
    flash(
        _(
            "Invitation mailed to %(mailed_to)s. The link in it works once and expires in %(INVITATION_DAYS)s days.",
            mailed_to=issued.mailed_to,
            INVITATION_DAYS=team_service.INVITATION_DAYS,
        ),
        "success",
    )


def _detail(tenant_id: int, status: int = 200, invite_form=None) -> ResponseReturnValue:
    tenant = tenant_admin.get_tenant(tenant_id)
    if invite_form is None:
        invite_form = InviteForm(formdata=None)
        invite_form.role.data = "owner"
    invite_form.role.choices = choices([(role, role_label(role, lower=False)) for role in ROLES])
    return page(
        "platform/tenant_detail.html",
        status,
        tenant=tenant,
        plans=quotas.list_plans(),
        quota_rows=[(q, getattr(tenant, q.column), quotas.limit_of(tenant, q.name)) for q in quotas.QUOTAS],
        members=team_service.list_members(tenant),
        invitations=team_service.list_invitations(tenant),
        invite_form=invite_form,
        confirm=ConfirmForm(),
    )


@bp.get("/tenants/<int:tenant_id>")
def tenant_detail(tenant_id: int) -> ResponseReturnValue:
    return _detail(tenant_id)


@bp.post("/tenants/<int:tenant_id>/invite")
def invite(tenant_id: int) -> ResponseReturnValue:
    tenant = tenant_admin.get_tenant(tenant_id)
    form = InviteForm()
    form.role.choices = choices([(role, role_label(role, lower=False)) for role in ROLES])
    if not form.validate_on_submit():
        return _detail(tenant.id, 400, invite_form=form)
    try:
        issued = team_service.invite_member(
            tenant,
            form.email.data,
            form.role.data,
            user_actor(),
            actor_role="owner",
            invited_by_id=current_user.id,
            accept_url=_accept_url,
        )
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _detail(tenant.id, exc.status, invite_form=form)
    _flash_mailed(issued)
    return redirect(url_for(".tenant_detail", tenant_id=tenant.id), code=303)


@bp.get("/tenants/<int:tenant_id>/invite")
def invite_form(tenant_id: int) -> ResponseReturnValue:
    """The invite form lives on the tenant page; this address only answers its posts."""
    return redirect(url_for(".tenant_detail", tenant_id=tenant_id, _anchor="invite"))


@bp.get("/tenants/<int:tenant_id>/deactivate")
def confirm_deactivate(tenant_id: int) -> ResponseReturnValue:
    tenant = tenant_admin.get_tenant(tenant_id)
    return confirm_page(
        title=_("Deactivate %(name)s?", name=tenant.name),
        message=_(
            "Its members can no longer sign in to work in it. Its sessions, messages and settings "
            "are kept, and you can activate it again."
        ),
        action=url_for(".set_active", tenant_id=tenant.id),
        button=_("Deactivate tenant"),
        cancel=url_for(".tenant_detail", tenant_id=tenant.id),
        fields={"active": "0"},
    )


@bp.post("/tenants/<int:tenant_id>/active")
def set_active(tenant_id: int) -> ResponseReturnValue:
    active = request.form.get("active") == "1"
    try:
        tenant = tenant_admin.set_tenant_active(tenant_id, active, user_actor())
    except ServiceError as exc:
        if exc.status == 404:
            raise
        flash(translated(exc.message), "error")
        return redirect(url_for(".tenant_detail", tenant_id=tenant_id))
    flash(
        _("%(name)s is active again.", name=tenant.name) if active else _("%(name)s is deactivated.", name=tenant.name),
        "success",
    )
    return redirect(url_for(".tenant_detail", tenant_id=tenant.id))
