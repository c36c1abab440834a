"""Forms of the administration, platform and account pages (Flask-WTF, CSRF on each that changes data)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import URL, DataRequired, EqualTo, Length, NumberRange, Optional, StopValidation

from portal.inputs import CalendarRange
from portal.services.passwords import MAX_PASSWORD, MIN_PASSWORD
from portal.services.quick_replies import TEXT_MAX as QUICK_REPLY_MAX
from portal.services.tenant_admin import LIMITS
from portal.web.forms import CheckboxListField, choices


class AtLeastOne:
    """Require one ticked box, without marking every box `required` (which would ask the browser for all)."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, form: FlaskForm, field: SelectMultipleField) -> None:
        if not field.data:
            raise StopValidation(self.message)


# -- API tokens ---------------------------------------------------------------------------------------------------

EXPIRY_CHOICES = choices([("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year"), ("never", "Never")])


class TokenForm(FlaskForm):
    name = StringField(
        "Name", validators=[DataRequired(message="Give the token a name you will recognise."), Length(max=100)]
    )
    scopes = CheckboxListField("Scopes", validators=[AtLeastOne("Pick at least one scope.")])
    expiry = SelectField("Expires", choices=EXPIRY_CHOICES, default="90")


# -- Team ---------------------------------------------------------------------------------------------------------


class InviteForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(message="Enter the address to invite."), Length(max=254)])
    role = SelectField("Role", validators=[DataRequired()])


class RoleForm(FlaskForm):
    role = SelectField("Role", validators=[DataRequired()])


# -- Audit log (a GET filter: nothing changes, so no CSRF token in the URL) ------------------------------------------


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False

    action = StringField("Action", validators=[Optional(), Length(max=64)])
    actor = StringField("Actor", validators=[Optional(), Length(max=254)])
    target = StringField("Target id", validators=[Optional(), Length(max=64)])
    since = DateField("From", validators=[Optional(), CalendarRange()])
    until = DateField("To", validators=[Optional(), CalendarRange()])


# -- Webhook endpoints --------------------------------------------------------------------------------------------


class EndpointForm(FlaskForm):
    url = URLField(
        "URL",
        validators=[
            DataRequired(message="Enter the URL that receives the events."),
            URL(require_tld=False, message="Enter a full http:// or https:// URL."),
            Length(max=2048),
        ],
    )
    description = StringField("Description", validators=[Optional(), Length(max=200)])
    events = CheckboxListField("Events", validators=[AtLeastOne("Pick at least one event.")])


# -- Tenant settings ----------------------------------------------------------------------------------------------


def _bounded(field: str, label: str) -> IntegerField:
    low, high, _ = LIMITS[field]
    return IntegerField(
        label,
        validators=[
            DataRequired(message=f"Enter a whole number from {low} to {high}.") if low > 0 else Optional(),
            NumberRange(min=low, max=high, message=f"Enter a whole number from {low} to {high}."),
        ],
    )


class SettingsForm(FlaskForm):
    send_rate_per_minute = _bounded("send_rate_per_minute", "Messages per minute, per session")
    retention_messages_days = _bounded("retention_messages_days", "Keep messages for (days)")
    retention_events_days = _bounded("retention_events_days", "Keep webhook events for (days)")
    retention_media_days = IntegerField(
        _l("Keep media files for (days)"),
        validators=[
            Optional(),
            NumberRange(min=1, max=LIMITS["retention_media_days"][1], message=_l("Enter a whole number of days.")),
        ],
    )
    max_sessions = _bounded("max_sessions", "Most WhatsApp sessions")
    read_receipts = BooleanField("Send read receipts")
    require_two_factor = BooleanField(_l("Require two-factor sign-in of every member"))


# -- Platform admin -----------------------------------------------------------------------------------------------


class TenantForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Enter the tenant's name."), Length(max=200)])
    slug = StringField("Slug", validators=[DataRequired(message="Enter a short id such as acme."), Length(max=63)])
    max_sessions = _bounded("max_sessions", "Most WhatsApp sessions")
    owner_email = EmailField("Owner's email", validators=[Optional(), Length(max=254)])


# -- Account ------------------------------------------------------------------------------------------------------


class ForgotPasswordForm(FlaskForm):
    email = EmailField(
        "Email", validators=[DataRequired(message="Enter the address you sign in with."), Length(max=254)]
    )


def _new_password() -> PasswordField:
    return PasswordField(
        "New password",
        validators=[
            DataRequired(message="Choose a password."),
            Length(
                min=MIN_PASSWORD,
                max=MAX_PASSWORD,
                message=f"Use at least {MIN_PASSWORD} characters (at most {MAX_PASSWORD}).",
            ),
        ],
    )


def _confirm() -> PasswordField:
    return PasswordField(
        "Repeat the password",
        validators=[DataRequired(message="Repeat the password."), EqualTo("password", message="The passwords differ.")],
    )


class ResetPasswordForm(FlaskForm):
    password = _new_password()
    confirm = _confirm()


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(message="Enter your current password."), Length(max=MAX_PASSWORD)]
    )
    password = _new_password()
    confirm = _confirm()


class AcceptInvitationForm(FlaskForm):
    name = StringField("Your name", validators=[Optional(), Length(max=200)])
    password = _new_password()
    confirm = _confirm()


# -- Quick replies ------------------------------------------------------------------------------------------------


class QuickReplyForm(FlaskForm):
    shortcut = StringField(
        "Shortcut",
        validators=[DataRequired(message="Give the reply a shortcut."), Length(max=40)],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    text = TextAreaField(
        "Text",
        validators=[DataRequired(message="Write the reply's text.")],
        render_kw={"data-limit": QUICK_REPLY_MAX, "rows": 4},
    )
