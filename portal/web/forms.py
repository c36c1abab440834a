"""Flask-WTF forms of the portal (CSRF on each)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Keep me signed in on this device")
    next = StringField()  # where to go after sign-in; checked to stay on this site


class TenantSwitchForm(FlaskForm):
    tenant_id = StringField(validators=[DataRequired(), Length(max=20)])
