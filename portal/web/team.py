"""The team page: members and their roles, invitations by mailed link, removal."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from portal.i18n import gettext as _
from portal.i18n import ngettext, translated
from portal.models import Membership
from portal.services import team as team_service
from portal.services import tokens as tokens_service
from portal.services.accounts import public_url
from portal.services.errors import ServiceError
from portal.tenancy import Principal, require
from portal.web.admin_forms import InviteForm, RoleForm
from portal.web.forms import choices
from portal.web.helpers import apply_service_error, confirm_page, page, principal
from portal.web.wording import role_label

bp = Blueprint("admin_team", __name__, url_prefix="/admin/team")


def _invite_form(who: Principal, blank: bool = False) -> InviteForm:
    form = InviteForm(formdata=None) if blank else InviteForm()
    assignable = team_service.assignable_roles(who.role)
    form.role.choices = choices([(role, role_label(role, lower=False)) for role in assignable])
    if blank or not form.is_submitted():
        form.role.data = "operator"
    return form


def _role_form(who: Principal, membership: Membership) -> RoleForm | None:
    """A role picker for this member, or None when the viewer may not change their role."""
    assignable = team_service.assignable_roles(who.role)
    if membership.role not in assignable:
        return None
    form = RoleForm(formdata=None)
    form.role.choices = choices([(role, role_label(role, lower=False)) for role in assignable])
    form.role.data = membership.role
    return form


def _index(
    invite_form: InviteForm, status: int = 200, role_errors: dict[int, str] | None = None
) -> ResponseReturnValue:
    who = principal()
    members = team_service.list_members(who.tenant)
    return page(
        "admin/team.html",
        status,
        invite_form=invite_form,
        members=members,
        role_forms={m.user_id: _role_form(who, m) for m in members},
        invitations=team_service.list_invitations(who.tenant),
        assignable=team_service.assignable_roles(who.role),
        role_errors=role_errors or {},
    )


@bp.get("/")
@login_required
@require("team:manage")
def index() -> ResponseReturnValue:
    return _index(_invite_form(principal()))


@bp.post("/invite")
@login_required
@require("team:manage")
def invite() -> ResponseReturnValue:
    who = principal()
    form = _invite_form(who)
    if not form.validate_on_submit():
        return _index(form, 400)
    try:
        issued = team_service.invite_member(
            who.tenant,
            form.email.data,
            form.role.data,
            who.actor(),
            actor_role=who.role,
            invited_by_id=current_user.id,
            accept_url=lambda token: public_url("account.accept_invitation", token=token),
        )
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _index(form, exc.status)
    # The link went to the invited address only; the inviter is told where, never shown the link. The redirect
    # keeps a reload from inviting twice.
    flash(
        _(
            "Invitation mailed to %(mailed_to)s. The link in it works once and expires in %(INVITATION_DAYS)s days.",
            mailed_to=issued.mailed_to,
            INVITATION_DAYS=team_service.INVITATION_DAYS,
        ),
        "success",
    )
    return redirect(url_for(".index"), code=303)


@bp.get("/invite")
@login_required
@require("team:manage")
def invite_form() -> ResponseReturnValue:
    """The invite form lives on the team page; this address only answers its posts."""
    return redirect(url_for(".index", _anchor="invite"))


@bp.post("/<int:user_id>/role")
@login_required
@require("team:manage")
def change_role(user_id: int) -> ResponseReturnValue:
    who = principal()
    form = RoleForm()
    form.role.choices = choices([(role, role) for role in team_service.assignable_roles(who.role)])
    if not form.validate_on_submit():
        return _index(_invite_form(who, blank=True), 400, role_errors={user_id: _("Pick one of the roles offered.")})
    try:
        membership = team_service.change_role(who.tenant, user_id, form.role.data, who.actor(), actor_role=who.role)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        return _index(_invite_form(who, blank=True), exc.status, role_errors={user_id: translated(exc.message)})
    flash(_("%(email)s is now %(role)s.", email=membership.user.email, role=role_label(membership.role)), "success")
    return redirect(url_for(".index"))


@bp.get("/<int:user_id>/remove")
@login_required
@require("team:manage")
def confirm_remove(user_id: int) -> ResponseReturnValue:
    who = principal()
    membership = team_service.get_member(who.tenant, user_id)
    yourself = membership.user_id == current_user.id
    message = (
        _("You will no longer be able to work in %(name)s.", name=who.tenant.name)
        if yourself
        else _(
            "%(email)s will no longer be able to work in %(name)s. "
            "Their account stays; you can invite them again later.",
            email=membership.user.email,
            name=who.tenant.name,
        )
    )
    live_tokens = tokens_service.count_live_created_by(who.tenant, user_id)
    if live_tokens:
        message += " " + ngettext(
            "The API token made by this member stops working.",
            "The %(num)d API tokens made by this member stop working.",
            live_tokens,
        )
    return confirm_page(
        title=_("Leave this team?") if yourself else _("Remove %(email)s?", email=membership.user.email),
        message=message,
        action=url_for(".remove", user_id=user_id),
        button=_("Leave") if yourself else _("Remove member"),
        cancel=url_for(".index"),
    )


@bp.post("/<int:user_id>/remove")
@login_required
@require("team:manage")
def remove(user_id: int) -> ResponseReturnValue:
    who = principal()
    membership = team_service.get_member(who.tenant, user_id)
    email = membership.user.email
    try:
        team_service.remove_member(who.tenant, user_id, who.actor(), actor_role=who.role)
    except ServiceError as exc:
        return _index(_invite_form(who, blank=True), exc.status, role_errors={user_id: translated(exc.message)})
    if user_id == current_user.id:
        flash(_("You left %(name)s.", name=who.tenant.name), "success")
        return redirect(url_for("dashboard.index"))
    flash(_("%(email)s was removed from the team.", email=email), "success")
    return redirect(url_for(".index"))


@bp.get("/invitations/<int:invitation_id>/revoke")
@login_required
@require("team:manage")
def confirm_revoke_invitation(invitation_id: int) -> ResponseReturnValue:
    invitation = team_service.get_invitation(principal().tenant, invitation_id)
    return confirm_page(
        title=_("Withdraw the invitation to %(email)s?", email=invitation.email),
        message=_("The link sent to them will stop working."),
        action=url_for(".revoke_invitation", invitation_id=invitation.id),
        button=_("Withdraw invitation"),
        cancel=url_for(".index"),
    )


@bp.post("/invitations/<int:invitation_id>/revoke")
@login_required
@require("team:manage")
def revoke_invitation(invitation_id: int) -> ResponseReturnValue:
    who = principal()
    invitation = team_service.revoke_invitation(who.tenant, invitation_id, who.actor(), actor_role=who.role)
    flash(_("The invitation to %(email)s is withdrawn.", email=invitation.email), "success")
    return redirect(url_for(".index"))
