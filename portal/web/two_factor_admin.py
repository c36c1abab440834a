"""Resetting the lost second factor of someone else: an owner for the members of their team, a platform admin
for the members of any tenant. Both are confirmed on a page of their own and audited in the tenant's log."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from portal.i18n import gettext as _
from portal.services import tenant_admin, two_factor
from portal.tenancy import require
from portal.web.forms import ConfirmForm
from portal.web.helpers import confirm_page, principal, user_actor

bp = Blueprint("two_factor_admin", __name__)


def _confirm(email: str, action: str, cancel: str) -> ResponseReturnValue:
    return confirm_page(
        title=_("Reset two-factor sign-in of %(email)s?", email=email),
        message=_(
            "Their authenticator app, passkeys, recovery codes and remembered browsers are removed. They sign in "
            "with their password alone until they set up a new factor (at once, if the team requires one)."
        ),
        action=action,
        button=_("Reset two-factor sign-in"),
        cancel=cancel,
    )


def _owner_only() -> None:
    if principal().role != "owner":
        abort(403, _("Only owners can reset a member's two-factor sign-in."))


@bp.get("/admin/team/<int:user_id>/two-factor/reset")
@login_required
@require("team:manage")
def confirm_reset(user_id: int) -> ResponseReturnValue:
    _owner_only()
    who = principal()
    user = two_factor.member_for_reset(who.tenant, user_id)  # NotFound (404) outside the team
    return _confirm(user.email, url_for(".reset", user_id=user_id), url_for("admin_team.index"))


@bp.post("/admin/team/<int:user_id>/two-factor/reset")
@login_required
@require("team:manage")
def reset(user_id: int) -> ResponseReturnValue:
    _owner_only()
    who = principal()
    user = two_factor.member_for_reset(who.tenant, user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    two_factor.reset(user, who.actor(), tenant_id=who.tenant.id)
    flash(_("Two-factor sign-in of %(email)s was reset.", email=user.email), "success")
    return redirect(url_for("admin_team.index"), code=303)


def _platform_admin() -> None:
    if not current_user.is_platform_admin:
        abort(403, _("Only platform admins can open this area."))


@bp.get("/platform/tenants/<int:tenant_id>/members/<int:user_id>/two-factor/reset")
@login_required
def platform_confirm_reset(tenant_id: int, user_id: int) -> ResponseReturnValue:
    _platform_admin()
    tenant = tenant_admin.get_tenant(tenant_id)
    user = two_factor.member_for_reset(tenant, user_id)
    return _confirm(
        user.email,
        url_for(".platform_reset", tenant_id=tenant_id, user_id=user_id),
        url_for("platform.tenant_detail", tenant_id=tenant_id),
    )


@bp.post("/platform/tenants/<int:tenant_id>/members/<int:user_id>/two-factor/reset")
@login_required
def platform_reset(tenant_id: int, user_id: int) -> ResponseReturnValue:
    _platform_admin()
    tenant = tenant_admin.get_tenant(tenant_id)
    user = two_factor.member_for_reset(tenant, user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    two_factor.reset(user, user_actor(), tenant_id=tenant.id)
    flash(_("Two-factor sign-in of %(email)s was reset.", email=user.email), "success")
    return redirect(url_for("platform.tenant_detail", tenant_id=tenant_id), code=303)
