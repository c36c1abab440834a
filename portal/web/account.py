"""Account pages outside the sign-in form: your signed-in browsers and password, password reset, invitation
acceptance, OpenID Connect sign-in."""

from __future__ import annotations

import logging
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import Blueprint, abort, current_app, flash, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import ngettext, refresh
from flask_login import current_user, login_required
from joserfc.errors import JoseError

from portal.extensions import limiter
from portal.i18n import LANGUAGES, translated
from portal.i18n import gettext as _
from portal.security import safe_next
from portal.services import accounts, browser_sessions, team
from portal.services.errors import ServiceError
from portal.services.preferences import time_zones, update_preferences
from portal.services.tenants import get_user_by_email
from portal.tenancy import request_actor
from portal.web.admin_forms import (
    AcceptInvitationForm,
    ChangePasswordForm,
    ForgotPasswordForm,
    PreferencesForm,
    ResetPasswordForm,
)
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_service_error, page, user_actor
from portal.web.second_factor import after_first_factor
from portal.web.signin import current_browser_token, sign_in_browser, sign_out_browser

log = logging.getLogger(__name__)

bp = Blueprint("account", __name__)

OIDC_SCOPES = "openid email profile"


def _private(response: Any) -> Any:
    # These pages carry a secret in their URL: keep it out of caches and of Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# -- Your account: signed-in browsers and password ------------------------------------------------------------------


def _me() -> Any:
    return current_user._get_current_object()


def _preferences_form(formdata: Any = None) -> PreferencesForm:
    me = _me()
    form = PreferencesForm(formdata=formdata, data={"language": me.language or "", "timezone": me.timezone or ""})
    form.language.choices = [("", _("The browser's language"))] + list(LANGUAGES.items())
    form.timezone.choices = [("", _("The team's time zone"))] + [(zone, zone) for zone in time_zones()]
    return form


def _account_page(
    form: ChangePasswordForm | None = None, status: int = 200, prefs: PreferencesForm | None = None
) -> ResponseReturnValue:
    return page(
        "account/index.html",
        status,
        no_store=True,
        prefs=prefs or _preferences_form(),
        form=form or ChangePasswordForm(formdata=None),
        browsers=browser_sessions.list_for(_me()),
        current_id=_current_browser_id(),
        has_password=bool(current_user.password_hash),
    )


def _current_browser_id() -> int | None:
    return getattr(current_user, "browser_session_id", None)


@bp.get("/account")
@login_required
def index() -> ResponseReturnValue:
    return _account_page()


@bp.post("/account/browsers/<int:browser_id>/sign-out")
@login_required
def sign_out_browser_session(browser_id: int) -> ResponseReturnValue:
    if browser_id == _current_browser_id():
        browser_sessions.end(_me(), current_browser_token(), user_actor())
        sign_out_browser()
        flash(_("You are signed out."), "info")
        return redirect(url_for("auth.login"))
    row = browser_sessions.revoke(_me(), browser_id, user_actor())  # NotFound (404) for anyone else's
    flash(_("Signed out: %(user_agent)s.", user_agent=row.user_agent[:80] or _("unknown browser")), "success")
    return redirect(url_for(".index"), code=303)


@bp.post("/account/browsers/sign-out-others")
@login_required
def sign_out_others() -> ResponseReturnValue:
    count = browser_sessions.revoke_all(_me(), user_actor(), keep_token=current_browser_token())
    flash(
        ngettext(
            "Signed out everywhere else (%(num)s browser).", "Signed out everywhere else (%(num)s browsers).", count
        ),
        "success",
    )
    return redirect(url_for(".index"), code=303)


@bp.post("/account/browsers/sign-out-everywhere")
@login_required
def sign_out_everywhere() -> ResponseReturnValue:
    browser_sessions.revoke_all(_me(), user_actor())
    sign_out_browser()
    flash(_("You are signed out everywhere, this browser included."), "info")
    return redirect(url_for("auth.login"))


@bp.post("/account/preferences")
@login_required
def save_preferences() -> ResponseReturnValue:
    form = _preferences_form(request.form)
    if not form.validate_on_submit():
        return _account_page(status=400, prefs=form)
    try:
        update_preferences(_me(), form.language.data, form.timezone.data, user_actor())
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _account_page(status=exc.status, prefs=form)
    refresh()  # the page after this one, and this message, in the new language
    flash(_("Your language and time zone are saved."), "success")
    return redirect(url_for(".index"), code=303)


@bp.post("/account/password")
@login_required
@limiter.limit("10 per minute")
def change_password() -> ResponseReturnValue:
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _account_page(form, 400)
    user = _me()
    remember = browser_sessions.is_remembered(user, _current_browser_id())
    tenant_id = session.get("tenant_id")
    try:
        accounts.change_password(user, form.current_password.data, form.password.data, user_actor())
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _account_page(form, exc.status)
    passed = getattr(getattr(user, "signed_in", None), "second_factor", None)
    # all were signed out; this one goes on, with the second step it passed
    sign_in_browser(user, remember=remember, tenant_id=tenant_id, second_factor=passed)
    flash(_("Your password is changed. Every other browser was signed out."), "success")
    return redirect(url_for(".index"), code=303)


# -- Password reset -----------------------------------------------------------------------------------------------


@bp.route("/account/forgot", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
def forgot_password() -> ResponseReturnValue:
    form = ForgotPasswordForm(email=request.args.get("email", ""))
    if form.validate_on_submit():
        accounts.request_password_reset(form.email.data, request_actor())
        # The same answer whether or not the address has an account.
        return page("account/forgot_sent.html", email=form.email.data)
    return page("account/forgot.html", 400 if form.is_submitted() else 200, form=form)


@bp.route("/account/reset/<token>", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def reset_password(token: str) -> ResponseReturnValue:
    try:
        user = accounts.user_for_reset_token(token)
    except ServiceError as exc:
        return _private(page("account/reset_invalid.html", 400, message=translated(exc.message)))
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            accounts.reset_password(token, form.password.data, request_actor("user", user.email, str(user.id)))
        except ServiceError as exc:
            if exc.code == "reset_link_invalid":
                return _private(page("account/reset_invalid.html", 400, message=translated(exc.message)))
            apply_service_error(form, exc)
        else:
            flash(_("Your password is changed. Sign in with the new one."), "success")
            return redirect(url_for("auth.login"))
    return _private(page("account/reset.html", 400 if form.is_submitted() else 200, form=form, user=user))


# -- Invitations --------------------------------------------------------------------------------------------------


@bp.route("/invite/<token>", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def accept_invitation(token: str) -> ResponseReturnValue:
    try:
        invitation = team.find_invitation(token)
    except ServiceError as exc:
        return _private(page("account/invitation_invalid.html", exc.status, message=translated(exc.message)))
    signed_in = current_user.is_authenticated
    existing = None if signed_in else get_user_by_email(invitation.email)
    form: Any = ConfirmForm() if signed_in or existing else AcceptInvitationForm()
    status = 200
    if request.method == "POST" and existing is None:
        status = 400
        if form.validate_on_submit():
            tenant_id, tenant_name = invitation.tenant_id, team.tenant_of(invitation).name
            actor = user_actor() if signed_in else request_actor("anonymous", invitation.email)
            try:
                user = team.accept_invitation(
                    token,
                    actor,
                    user=current_user._get_current_object() if signed_in else None,
                    name=(form.name.data or "") if "name" in form else "",
                    password=None if signed_in else form.password.data,
                )
            except ServiceError as exc:
                apply_service_error(form, exc)
                status = exc.status
            else:
                if signed_in:
                    session["tenant_id"] = tenant_id
                else:
                    sign_in_browser(user, method="invitation", tenant_id=tenant_id)
                flash(_("Welcome to %(tenant_name)s.", tenant_name=tenant_name), "success")
                return redirect(url_for("dashboard.index"))
    mismatch = signed_in and current_user.email.lower() != invitation.email.lower()
    return _private(
        page(
            "account/invitation.html",
            status,
            form=form,
            invitation=invitation,
            tenant_name=team.tenant_of(invitation).name,
            existing=existing,
            mismatch=mismatch,
            oidc_enabled=oidc_client() is not None,
        )
    )


# -- OpenID Connect -----------------------------------------------------------------------------------------------


def oidc_client() -> Any:
    """The OIDC client for the configured provider, or None when single sign-on is not set up.

    Built on first use (and again if the settings change), so a provider that is down at start-up does not
    stop the portal."""
    cfg = current_app.config
    issuer, client_id, secret = cfg.get("OIDC_ISSUER"), cfg.get("OIDC_CLIENT_ID"), cfg.get("OIDC_CLIENT_SECRET")
    if not (issuer and client_id and secret):
        return None
    clients = current_app.extensions.setdefault("portal_oidc", {})
    key = (issuer, client_id, secret)
    if key not in clients:
        oauth = OAuth(current_app._get_current_object())  # type: ignore[attr-defined]  # LocalProxy hides the method from the checker
        clients[key] = oauth.register(
            "oidc",
            client_id=client_id,
            client_secret=secret,
            server_metadata_url=f"{issuer.rstrip('/')}/.well-known/openid-configuration",
            client_kwargs={"scope": OIDC_SCOPES, "code_challenge_method": "S256", "timeout": 10},
        )
    return clients[key]


@bp.get("/login/oidc")
@limiter.limit("30 per minute")
def oidc_login() -> ResponseReturnValue:
    client = oidc_client()
    if client is None:
        abort(404, _("Single sign-on is not set up on this portal."))
    next_url = safe_next(request.args.get("next"))
    try:
        response = client.authorize_redirect(url_for(".oidc_callback", _external=True))
    except (AuthlibBaseError, requests.RequestException, ValueError) as exc:
        log.warning("OIDC provider unreachable: %s", exc)
        flash(
            _("Single sign-on is unavailable right now. Try again in a minute, or sign in with your password."), "error"
        )
        return redirect(url_for("auth.login"))
    if next_url:
        session["oidc_next"] = next_url
    return response


@bp.get("/login/oidc/callback")
@limiter.limit("30 per minute")
def oidc_callback() -> ResponseReturnValue:
    client = oidc_client()
    if client is None:
        abort(404, _("Single sign-on is not set up on this portal."))
    try:
        token = client.authorize_access_token()
    except (AuthlibBaseError, JoseError, requests.RequestException, ValueError) as exc:
        log.warning("OIDC sign-in failed: %s", exc)
        accounts.record_oidc_failure(str(exc), request_actor())
        flash(_("Single sign-on did not complete. Try again, or sign in with your password."), "error")
        return redirect(url_for("auth.login"))
    claims = dict(token.get("userinfo") or {})
    next_url = session.pop("oidc_next", None)
    try:
        user = accounts.sign_in_oidc(claims, request_actor("anonymous", claims.get("email")))
    except ServiceError as exc:
        flash(translated(exc.message), "error")
        return redirect(url_for("auth.login"))
    return after_first_factor(user, remember=False, next_url=next_url, method="oidc")
