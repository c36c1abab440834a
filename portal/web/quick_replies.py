"""Quick replies: the tenant's saved answers that the inbox's composer inserts by their shortcut ("/"); admins
list, add, change and delete them here (quick_replies:manage)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from portal.i18n import gettext as _
from portal.services import quick_replies as replies_service
from portal.services.errors import ServiceError
from portal.tenancy import require
from portal.web.admin_forms import QuickReplyForm
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_service_error, confirm_page, page, principal

bp = Blueprint("admin_quick_replies", __name__, url_prefix="/admin/quick-replies")
MANAGE = "quick_replies:manage"


def _index(form: QuickReplyForm, status: int = 200) -> ResponseReturnValue:
    replies = replies_service.list_replies(principal().tenant)
    return page("admin/quick_replies.html", status, form=form, replies=replies, limit=replies_service.MAX_PER_TENANT)


@bp.get("/")
@login_required
@require(MANAGE)
def index() -> ResponseReturnValue:
    return _index(QuickReplyForm(formdata=None))


@bp.post("/")
@login_required
@require(MANAGE)
def create() -> ResponseReturnValue:
    who = principal()
    form = QuickReplyForm()
    if not form.validate_on_submit():
        return _index(form, 400)
    try:
        reply = replies_service.create_reply(who.tenant, who.actor(), shortcut=form.shortcut.data, text=form.text.data)
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _index(form, exc.status)
    flash(_("The quick reply /%(shortcut)s is saved.", shortcut=reply.shortcut), "success")
    return redirect(url_for(".index"), code=303)


@bp.route("/<int:reply_id>/edit", methods=["GET", "POST"])
@login_required
@require(MANAGE)
def edit(reply_id: int) -> ResponseReturnValue:
    who = principal()
    reply = replies_service.get_reply(who.tenant, reply_id)
    form = QuickReplyForm(obj=reply)
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                replies_service.update_reply(
                    who.tenant, reply.id, who.actor(), shortcut=form.shortcut.data, text=form.text.data
                )
            except ServiceError as exc:
                apply_service_error(form, exc)
                status = exc.status
            else:
                flash(_("The quick reply /%(shortcut)s is saved.", shortcut=reply.shortcut), "success")
                return redirect(url_for(".index"), code=303)
    return page("admin/quick_reply_edit.html", status, form=form, reply=reply)


@bp.get("/<int:reply_id>/delete")
@login_required
@require(MANAGE)
def confirm_delete(reply_id: int) -> ResponseReturnValue:
    reply = replies_service.get_reply(principal().tenant, reply_id)
    return confirm_page(
        title=_("Delete the quick reply /%(shortcut)s?", shortcut=reply.shortcut),
        message=_("The team can no longer insert it from the composer. Messages already sent keep their text."),
        action=url_for(".delete", reply_id=reply.id),
        button=_("Delete quick reply"),
        cancel=url_for(".index"),
    )


@bp.post("/<int:reply_id>/delete")
@login_required
@require(MANAGE)
def delete(reply_id: int) -> ResponseReturnValue:
    who = principal()
    if not ConfirmForm().validate_on_submit():
        abort(400, _("The form expired. Reload the page and try again."))
    reply = replies_service.get_reply(who.tenant, reply_id)
    shortcut = reply.shortcut
    replies_service.delete_reply(who.tenant, reply.id, who.actor())
    flash(_("The quick reply /%(shortcut)s is deleted.", shortcut=shortcut), "success")
    return redirect(url_for(".index"), code=303)
