"""Forms of two-factor sign-in: the second step, confirming an authenticator app, re-authenticating."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from portal.i18n import lazy_gettext as _l


class SecondStepForm(FlaskForm):
    code = StringField(
        _l("Code"),
        validators=[DataRequired(message=_l("Enter the code from your app, or a recovery code.")), Length(max=40)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True},
    )
    remember_browser = BooleanField(_l("Remember this browser for 30 days"))


class TotpConfirmForm(FlaskForm):
    code = StringField(
        _l("Code from your app"),
        validators=[DataRequired(message=_l("Enter the 6-digit code your app shows.")), Length(max=10)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


class ReauthForm(FlaskForm):
    reauth = PasswordField(
        _l("Your password, or a current code from your app"),
        validators=[DataRequired(message=_l("Confirm it is you first.")), Length(max=200)],
    )
