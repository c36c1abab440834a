"""Two-factor sign-in pages: the second step of a sign-in, sign-in with a passkey alone, and the account's
factors (authenticator app, passkeys, recovery codes)."""

from __future__ import annotations

from typing import Any

import segno
from flask import Blueprint, abort, flash, jsonify, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from portal.extensions import limiter
from portal.i18n import gettext as _
from portal.i18n import translated
from portal.services import browser_sessions, two_factor
from portal.services.errors import ServiceError
from portal.services.two_factor import passkeys, recovery, totp
from portal.tenancy import request_actor
from portal.web.helpers import apply_service_error, page, user_actor
from portal.web.second_factor import destination, finish, pending, relying_party
from portal.web.signin import sign_in_browser
from portal.web.two_factor_forms import ReauthForm, SecondStepForm, TotpConfirmForm

bp = Blueprint("two_factor", __name__)

TICKET = "webauthn_ticket"
ISSUER = "WAHA Portal"


def _me() -> Any:
    return current_user._get_current_object()


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, _("Send a JSON object."))
    return body


def _json_error(exc: ServiceError) -> ResponseReturnValue:
    return jsonify({"error": {"code": exc.code, "message": translated(exc.message)}}), exc.status


# -- The second step of a sign-in -----------------------------------------------------------------------------------


@bp.route("/login/two-factor", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def second_step() -> ResponseReturnValue:
    found = pending()
    if found is None:
        flash(_("Sign in first."), "info")
        return redirect(url_for("auth.login"))
    user, note = found
    form = SecondStepForm()
    status = 200
    if form.validate_on_submit():
        try:
            how = two_factor.verify_code(user, form.code.data, request_actor("user", user.email, str(user.id)))
        except ServiceError as exc:
            apply_service_error(form, exc)
            status = exc.status
        else:
            response = finish(user, note, how, remember_browser=bool(form.remember_browser.data))
            if how == "recovery":  # after finish(): signing in starts a fresh session
                flash(_("You used a recovery code: %(left)d left.", left=recovery.remaining(user)), "info")
            return response
    elif form.is_submitted():
        status = 400
    st = two_factor.status(user)
    return page("two_factor/second_step.html", status, no_store=True, form=form, status=st)


@bp.post("/login/two-factor/passkey/options")
@limiter.limit("20 per minute")
def second_step_passkey_options() -> ResponseReturnValue:
    found = pending()
    if found is None:
        return jsonify({"error": {"code": "unauthorized", "message": _("Sign in first.")}}), 401
    options, session[TICKET] = passkeys.authentication_options(relying_party(), found[0])
    return options, 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}


@bp.post("/login/two-factor/passkey")
@limiter.limit("20 per minute")
def second_step_passkey() -> ResponseReturnValue:
    found = pending()
    if found is None:
        return jsonify({"error": {"code": "unauthorized", "message": _("Sign in first.")}}), 401
    user, note = found
    body = _json_body()
    actor = request_actor("user", user.email, str(user.id))
    try:
        passkeys.authenticate(body.get("credential"), session.pop(TICKET, None), relying_party(), actor, user=user)
    except ServiceError as exc:
        return _json_error(exc)
    response = finish(user, note, "passkey", remember_browser=bool(body.get("remember_browser")))
    cookie = response.headers.getlist("Set-Cookie")
    answer = jsonify({"redirect": response.location})
    for value in cookie:
        answer.headers.add("Set-Cookie", value)
    return answer


# -- Sign-in with a passkey alone (discoverable credentials) -----------------------------------------------------


@bp.post("/login/passkey/options")
@limiter.limit("30 per minute")
def passkey_signin_options() -> ResponseReturnValue:
    options, session[TICKET] = passkeys.authentication_options(relying_party())
    return options, 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}


@bp.post("/login/passkey")
@limiter.limit("20 per minute")
def passkey_signin() -> ResponseReturnValue:
    body = _json_body()
    try:
        user = passkeys.authenticate(
            body.get("credential"), session.pop(TICKET, None), relying_party(), request_actor()
        )
    except ServiceError as exc:
        return _json_error(exc)
    if not user.is_active:
        return jsonify({"error": {"code": "unauthorized", "message": translated(passkeys.FAILED)}}), 401
    two_factor.record_login(user, request_actor("user", user.email, str(user.id)))
    sign_in_browser(user, method="passkey", second_factor="passkey")
    return jsonify({"redirect": destination(user, str(body.get("next") or "") or None)})


# -- Your factors ----------------------------------------------------------------------------------------------------


def _recovery_form(**kwargs: Any) -> ReauthForm:
    """The confirmation of new recovery codes: the page's other confirmation field is named `reauth`, so this one
    is `recovery-reauth`. The app-wide CSRF check covers the POST (the form's hidden csrf_token)."""
    return ReauthForm(prefix="recovery", meta={"csrf": False}, **kwargs)


def _index(
    status: int = 200,
    reauth: ReauthForm | None = None,
    codes: list[str] | None = None,
    recovery_form: ReauthForm | None = None,
) -> ResponseReturnValue:
    user = _me()
    return page(
        "two_factor/index.html",
        status,
        no_store=True,
        status_=two_factor.status(user),
        passkeys=passkeys.list_for(user),
        reauth=reauth or ReauthForm(formdata=None),
        recovery_form=recovery_form or _recovery_form(formdata=None),
        required=two_factor.required_by_tenant(user),
        codes=codes,
    )


@bp.get("/account/two-factor")
@login_required
def index() -> ResponseReturnValue:
    return _index()


@bp.post("/account/two-factor/totp")
@login_required
def totp_start() -> ResponseReturnValue:
    try:
        totp.start_enrolment(_me())
    except ServiceError as exc:
        flash(translated(exc.message), "error")
        return redirect(url_for(".index"), code=303)
    return redirect(url_for(".totp_setup"), code=303)


def _qr_data_uri(uri: str) -> str:
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _setup_page(form: TotpConfirmForm, status: int = 200) -> ResponseReturnValue:
    user = _me()
    uri = totp.provisioning_uri(user, ISSUER)
    return page(
        "two_factor/totp_setup.html", status, no_store=True, form=form, qr=_qr_data_uri(uri), secret=user.totp_secret
    )


@bp.get("/account/two-factor/totp")
@login_required
def totp_setup() -> ResponseReturnValue:
    user = _me()
    if not user.totp_secret or user.totp_enabled_at is not None:
        return redirect(url_for(".index"))
    return _setup_page(TotpConfirmForm(formdata=None))


def _enrolled_here() -> None:
    session_id = getattr(current_user, "browser_session_id", None)
    if session_id:
        browser_sessions.mark_second_factor(session_id, "enrolled")


@bp.post("/account/two-factor/totp/confirm")
@login_required
@limiter.limit("10 per minute")
def totp_confirm() -> ResponseReturnValue:
    user = _me()
    form = TotpConfirmForm()
    if not user.totp_secret or user.totp_enabled_at is not None:
        return redirect(url_for(".index"), code=303)
    if not form.validate_on_submit():
        return _setup_page(form, 400)
    try:
        codes = totp.confirm(user, form.code.data, user_actor())
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _setup_page(form, exc.status)
    _enrolled_here()
    flash(_("Two-factor sign-in is on: your authenticator app is set up."), "success")
    if codes:
        return page("two_factor/recovery_codes.html", no_store=True, codes=codes)
    return redirect(url_for(".index"), code=303)


@bp.post("/account/two-factor/totp/disable")
@login_required
@limiter.limit("10 per minute")
def totp_disable() -> ResponseReturnValue:
    user = _me()
    form = ReauthForm()
    if not form.validate_on_submit():
        return _index(400, form)
    try:
        two_factor.check_reauth(user, form.reauth.data, user_actor())
        two_factor.refuse_if_last_required(user, removing="totp")
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _index(exc.status, form)
    totp.disable(user, user_actor())
    two_factor.tidy_when_none_left(user)
    flash(_("Your authenticator app no longer signs you in."), "success")
    return redirect(url_for(".index"), code=303)


@bp.post("/account/two-factor/recovery-codes")
@login_required
@limiter.limit("10 per minute")
def recovery_codes() -> ResponseReturnValue:
    user = _me()
    if not two_factor.has_factor(user):
        flash(_("Set up an authenticator app or a passkey first."), "error")
        return redirect(url_for(".index"), code=303)
    # New codes are a way in: whoever holds only the browser session must not be able to mint them.
    form = _recovery_form()
    if not form.validate_on_submit():
        return _index(400, recovery_form=form)
    try:
        two_factor.check_reauth(user, form.reauth.data, user_actor())
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _index(exc.status, recovery_form=form)
    codes = recovery.regenerate(user, user_actor())
    return page("two_factor/recovery_codes.html", no_store=True, codes=codes)


@bp.post("/account/two-factor/passkeys/options")
@login_required
@limiter.limit("20 per minute")
def passkey_register_options() -> ResponseReturnValue:
    options, session[TICKET] = passkeys.registration_options(_me(), relying_party())
    return options, 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}


@bp.post("/account/two-factor/passkeys")
@login_required
@limiter.limit("20 per minute")
def passkey_register() -> ResponseReturnValue:
    body = _json_body()
    user = _me()
    try:
        row = passkeys.register(
            user, body.get("credential"), str(body.get("name") or ""), session.pop(TICKET, None), relying_party(),
            user_actor(),
        )  # fmt: skip
    except ServiceError as exc:
        return _json_error(exc)
    _enrolled_here()
    flash(_("Passkey added: %(name)s.", name=row.name), "success")
    return jsonify({"redirect": url_for(".index")})


@bp.post("/account/two-factor/passkeys/<int:passkey_id>/delete")
@login_required
@limiter.limit("10 per minute")
def passkey_delete(passkey_id: int) -> ResponseReturnValue:
    user = _me()
    form = ReauthForm()
    if not form.validate_on_submit():
        return _index(400, form)
    try:
        two_factor.check_reauth(user, form.reauth.data, user_actor())
        passkeys.get(user, passkey_id)  # NotFound (404) for anyone else's
        two_factor.refuse_if_last_required(user, removing="passkey")
    except ServiceError as exc:
        if exc.status == 404:
            raise
        apply_service_error(form, exc)
        return _index(exc.status, form)
    row = passkeys.delete(user, passkey_id, user_actor())
    two_factor.tidy_when_none_left(user)
    flash(_("Passkey removed: %(name)s.", name=row.name), "success")
    return redirect(url_for(".index"), code=303)
