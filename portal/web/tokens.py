"""API tokens: create with scopes and expiry (secret shown once), list, revoke behind a confirmation."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from portal.i18n import gettext as _
from portal.i18n import translated
from portal.models import ApiToken, utcnow
from portal.permissions import PERMISSIONS
from portal.services import tokens as tokens_service
from portal.services.errors import ServiceError
from portal.tenancy import Principal, require
from portal.web import once
from portal.web.admin_forms import TokenForm
from portal.web.forms import ConfirmForm, choices
from portal.web.helpers import apply_service_error, confirm_page, page, principal

bp = Blueprint("admin_tokens", __name__, url_prefix="/admin/tokens")


def _form(who: Principal) -> TokenForm:
    form = TokenForm()
    # A token can never do more than the person who creates it.
    form.scopes.choices = choices(
        [(name, f"{name}: {translated(text)}") for name, text in PERMISSIONS.items() if who.can(name)]
    )
    return form


def _index(form: TokenForm, status: int = 200) -> ResponseReturnValue:
    who = principal()
    return page("admin/tokens.html", status, form=form, tokens=tokens_service.list_tokens(who.tenant), now=utcnow())


@bp.get("/")
@login_required
@require("tokens:manage")
def index() -> ResponseReturnValue:
    return _index(_form(principal()))


@bp.post("/")
@login_required
@require("tokens:manage")
def create() -> ResponseReturnValue:
    who = principal()
    form = _form(who)
    if not form.validate_on_submit():
        return _index(form, 400)
    expires_at = None if form.expiry.data == "never" else utcnow() + timedelta(days=int(form.expiry.data))
    try:
        issued = tokens_service.create_token(
            who.tenant,
            form.name.data,
            form.scopes.data,
            who.actor(),
            expires_at=expires_at,
            created_by_id=current_user.id,
        )
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _index(form, exc.status)
    # Redirect, so a reload cannot create a second token. The secret waits server-side for one read: it is
    # never in the URL, the session cookie or a flash message.
    key = once.keep_for_viewer("token", {"token_id": issued.token.id, "secret": issued.secret})
    return redirect(url_for(".created", key=key), code=303)


@bp.get("/created/<key>")
@login_required
@require("tokens:manage")
def created(key: str) -> ResponseReturnValue:
    kept = once.take_for_viewer("token", key)
    if kept is None:
        return once.gone(
            _("The token was shown already"),
            _(
                "A token's secret is shown only once, right after it is created, and cannot be shown again. If you did "
                "not copy it, revoke the token and create a new one."
            ),
            back=url_for(".index"),
            back_label=_("Back to the tokens"),
        )
    issued = tokens_service.IssuedToken(token=_token(int(kept["token_id"])), secret=str(kept["secret"]))
    return page("admin/token_created.html", no_store=True, issued=issued)


def _token(token_id: int) -> ApiToken:
    return tokens_service.get_token(principal().tenant, token_id)


@bp.get("/<int:token_id>/revoke")
@login_required
@require("tokens:manage")
def confirm_revoke(token_id: int) -> ResponseReturnValue:
    token = _token(token_id)
    return confirm_page(
        title=_("Revoke the token “%(name)s”?", name=token.name),
        message=_("Programs that use it will get 401 Unauthorized from the next request on. This cannot be undone."),
        action=url_for(".revoke", token_id=token.id),
        button=_("Revoke token"),
        cancel=url_for(".index"),
    )


@bp.post("/<int:token_id>/revoke")
@login_required
@require("tokens:manage")
def revoke(token_id: int) -> ResponseReturnValue:
    who = principal()
    if not ConfirmForm().validate_on_submit():
        abort(400, _("The form expired. Reload the page and try again."))
    token = tokens_service.revoke_token(who.tenant, token_id, who.actor())
    flash(_("The token “%(name)s” is revoked.", name=token.name), "success")
    return redirect(url_for(".index"))
