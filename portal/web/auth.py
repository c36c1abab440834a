"""Sign in, sign out and switching between tenants."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from portal.extensions import limiter
from portal.i18n import gettext as _
from portal.i18n import translated
from portal.services import auth as auth_service
from portal.services import browser_sessions
from portal.services.errors import ServiceError
from portal.services.tenants import membership_for
from portal.tenancy import current_principal, request_actor
from portal.web.forms import LoginForm, TenantSwitchForm
from portal.web.helpers import user_actor
from portal.web.second_factor import after_first_factor
from portal.web.signin import current_browser_token, sign_out_browser

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        try:
            user = auth_service.sign_in(form.email.data, form.password.data, request_actor())
        except ServiceError as exc:
            form.password.errors.append(translated(exc.message))
        else:
            # The second step, when the user has a factor; signed in otherwise (portal/web/second_factor.py).
            return after_first_factor(
                user, remember=bool(form.remember.data), next_url=form.next.data, method="password"
            )
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> ResponseReturnValue:
    principal = current_principal()
    browser_sessions.end(
        current_user._get_current_object(),
        current_browser_token(),
        user_actor(),
        tenant_id=principal.tenant.id if principal else None,
    )
    sign_out_browser()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/switch-tenant", methods=["POST"])
@login_required
def switch_tenant() -> ResponseReturnValue:
    form = TenantSwitchForm()
    if form.validate_on_submit() and form.tenant_id.data.isascii() and form.tenant_id.data.isdecimal():
        membership = membership_for(current_user.id, int(form.tenant_id.data))
        if membership is not None:
            session["tenant_id"] = membership.tenant_id
            flash(_("Now working in %(name)s.", name=membership.tenant.name), "info")
    return redirect(url_for("dashboard.index"))
