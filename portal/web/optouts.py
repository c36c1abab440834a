"""The opt-out list: numbers that never get campaign or scheduled messages; added by keyword, by hand or from a
CSV, removed by hand; the keywords and the confirmation reply (settings:manage)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from portal.i18n import gettext as _
from portal.i18n import translated
from portal.services import optouts as optouts_service
from portal.services.errors import ServiceError
from portal.tenancy import require
from portal.web.campaign_forms import OptOutAddForm, OptOutImportForm, OptOutSettingsForm
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_service_error, page, principal

bp = Blueprint("optouts", __name__, url_prefix="/opt-outs")
READ, SEND, SETTINGS = "messages:read", "messages:send", "settings:manage"
PAGE = 100


def _index(status: int = 200, **forms: object) -> ResponseReturnValue:
    tenant = principal().tenant
    q = (request.args.get("q") or "").strip()[:40]
    offset = min(max(0, request.args.get("offset", 0, type=int) or 0), 10_000_000)
    listing = optouts_service.list_opt_outs(tenant, q=q or None, offset=offset, limit=PAGE)
    current = optouts_service.settings_for(tenant.id)
    settings_form = forms.get("settings_form") or OptOutSettingsForm(
        formdata=None, keywords="\n".join(current.keywords), confirm=current.confirm, confirm_text=current.confirm_text
    )
    return page(
        "optouts/index.html",
        status,
        listing=listing,
        q=q,
        offset=offset,
        page_size=PAGE,
        add_form=forms.get("add_form") or OptOutAddForm(formdata=None),
        import_form=forms.get("import_form") or OptOutImportForm(formdata=None),
        settings_form=settings_form,
        remove_form=ConfirmForm(),
        import_errors=forms.get("import_errors"),
    )


@bp.get("/")
@login_required
@require(READ)
def index() -> ResponseReturnValue:
    return _index()


@bp.post("/add")
@login_required
@require(SEND)
def add() -> ResponseReturnValue:
    who = principal()
    form = OptOutAddForm()
    if not form.validate_on_submit():
        return _index(400, add_form=form)
    try:
        row = optouts_service.add(who.tenant, who.actor(), form.phone.data, note=form.note.data)
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _index(exc.status, add_form=form)
    flash(_("%(chat_id)s is on the opt-out list.", chat_id=row.chat_id.removesuffix("@c.us")), "success")
    return redirect(url_for(".index"), code=303)


@bp.post("/remove")
@login_required
@require(SETTINGS)
def remove() -> ResponseReturnValue:
    who = principal()
    if not ConfirmForm().validate_on_submit():
        flash(_("The form expired; try again."), "error")
        return redirect(url_for(".index"), code=303)
    try:
        optouts_service.remove(who.tenant, who.actor(), request.form.get("phone", ""))
    except ServiceError as exc:
        flash(translated(exc.message), "error")
    else:
        flash(_("The number is off the opt-out list."), "success")
    return redirect(url_for(".index"), code=303)


@bp.post("/import")
@login_required
@require(SEND)
def import_csv() -> ResponseReturnValue:
    who = principal()
    form = OptOutImportForm()
    if not form.validate_on_submit():
        return _index(400, import_form=form)
    upload = form.file.data
    try:
        result = optouts_service.import_csv(who.tenant, who.actor(), upload.read() if upload else b"")
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _index(exc.status, import_form=form)
    flash(
        _(
            "Numbers added: %(added)s · already on the list: %(already)s · repeated in the file: %(repeated)s · "
            "rows refused: %(errors)s.",
            added=result.added,
            already=result.already,
            repeated=result.repeated,
            errors=len(result.errors),
        ),
        "success",
    )
    if result.errors:
        return _index(200, import_errors=result.errors[:200])
    return redirect(url_for(".index"), code=303)


@bp.post("/settings")
@login_required
@require(SETTINGS)
def settings() -> ResponseReturnValue:
    who = principal()
    form = OptOutSettingsForm()
    if not form.validate_on_submit():
        return _index(400, settings_form=form)
    try:
        optouts_service.update_settings(
            who.tenant,
            who.actor(),
            keywords=form.keywords.data or "",
            confirm=bool(form.confirm.data),
            confirm_text=form.confirm_text.data,
        )
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _index(exc.status, settings_form=form)
    flash(_("The opt-out settings are saved."), "success")
    return redirect(url_for(".index"), code=303)
