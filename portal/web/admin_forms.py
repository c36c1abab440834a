"""Forms of the administration, platform and account pages (Flask-WTF, CSRF on each that changes data)."""

from __future__ import annotations

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

from portal.i18n import lazy_gettext as _l
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

EXPIRY_CHOICES = choices(
    [("30", _l("In 30 days")), ("90", _l("In 90 days")), ("365", _l("In a year")), ("never", _l("Never"))]
)


class TokenForm(FlaskForm):
    name = StringField(
        _l("Name"), validators=[DataRequired(message=_l("Give the token a name you will recognise.")), Length(max=100)]
    )
    scopes = CheckboxListField(_l("Scopes"), validators=[AtLeastOne(_l("Pick at least one scope."))])
    expiry = SelectField(_l("Expires"), choices=EXPIRY_CHOICES, default="90")


# -- Team ---------------------------------------------------------------------------------------------------------


class InviteForm(FlaskForm):
    email = EmailField(
        _l("Email"), validators=[DataRequired(message=_l("Enter the address to invite.")), Length(max=254)]
    )
    role = SelectField(_l("Role"), validators=[DataRequired()])


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), validators=[DataRequired()])


# -- Audit log (a GET filter: nothing changes, so no CSRF token in the URL) ------------------------------------------


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False

    action = StringField(_l("Action"), validators=[Optional(), Length(max=64)])
    actor = StringField(_l("Actor"), validators=[Optional(), Length(max=254)])
    target = StringField(_l("Target id"), validators=[Optional(), Length(max=64)])
    since = DateField(_l("From"), validators=[Optional(), CalendarRange()])
    until = DateField(_l("To"), validators=[Optional(), CalendarRange()])


# -- Webhook endpoints --------------------------------------------------------------------------------------------


class EndpointForm(FlaskForm):
    url = URLField(
        _l("URL"),
        validators=[
            DataRequired(message=_l("Enter the URL that receives the events.")),
            URL(require_tld=False, message=_l("Enter a full http:// or https:// URL.")),
            Length(max=2048),
        ],
    )
    description = StringField(_l("Description"), validators=[Optional(), Length(max=200)])
    events = CheckboxListField(_l("Events"), validators=[AtLeastOne(_l("Pick at least one event."))])


# -- Tenant settings ----------------------------------------------------------------------------------------------


def _bounded(field: str, label: str) -> IntegerField:
    low, high, _kind = LIMITS[field]
    return IntegerField(
        label,
        validators=[
            DataRequired(message=_l("Enter a whole number from %(low)s to %(high)s.", low=low, high=high))
            if low > 0
            else Optional(),
            NumberRange(
                min=low, max=high, message=_l("Enter a whole number from %(low)s to %(high)s.", low=low, high=high)
            ),
        ],
    )


class SettingsForm(FlaskForm):
    send_rate_per_minute = _bounded("send_rate_per_minute", _l("Messages per minute, per session"))
    retention_messages_days = _bounded("retention_messages_days", _l("Keep messages for (days)"))
    retention_events_days = _bounded("retention_events_days", _l("Keep webhook events for (days)"))
    retention_media_days = IntegerField(
        _l("Keep media files for (days)"),
        validators=[
            Optional(),
            NumberRange(min=1, max=LIMITS["retention_media_days"][1], message=_l("Enter a whole number of days.")),
        ],
    )
    max_sessions = _bounded("max_sessions", _l("Most WhatsApp sessions"))
    read_receipts = BooleanField(_l("Send read receipts"))
    require_two_factor = BooleanField(_l("Require two-factor sign-in of every member"))


# -- Platform admin -----------------------------------------------------------------------------------------------


class TenantForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(message=_l("Enter the tenant's name.")), Length(max=200)])
    slug = StringField(
        _l("Slug"), validators=[DataRequired(message=_l("Enter a short id such as acme.")), Length(max=63)]
    )
    max_sessions = _bounded("max_sessions", _l("Most WhatsApp sessions"))
    owner_email = EmailField(_l("Owner's email"), validators=[Optional(), Length(max=254)])


# -- Account ------------------------------------------------------------------------------------------------------


class ForgotPasswordForm(FlaskForm):
    email = EmailField(
        _l("Email"), validators=[DataRequired(message=_l("Enter the address you sign in with.")), Length(max=254)]
    )


def _new_password() -> PasswordField:
    return PasswordField(
        _l("New password"),
        validators=[
            DataRequired(message=_l("Choose a password.")),
            Length(
                min=MIN_PASSWORD,
                max=MAX_PASSWORD,
                message=_l(
                    "Use at least %(MIN_PASSWORD)s characters (at most %(MAX_PASSWORD)s).",
                    MIN_PASSWORD=MIN_PASSWORD,
                    MAX_PASSWORD=MAX_PASSWORD,
                ),
            ),
        ],
    )


def _confirm() -> PasswordField:
    return PasswordField(
        _l("Repeat the password"),
        validators=[
            DataRequired(message=_l("Repeat the password.")),
            EqualTo("password", message=_l("The passwords differ.")),
        ],
    )


class ResetPasswordForm(FlaskForm):
    password = _new_password()
    confirm = _confirm()


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(message=_l("Enter your current password.")), Length(max=MAX_PASSWORD)],
    )
    password = _new_password()
    confirm = _confirm()


class AcceptInvitationForm(FlaskForm):
    name = StringField(_l("Your name"), validators=[Optional(), Length(max=200)])
    password = _new_password()
    confirm = _confirm()


# -- Quick replies ------------------------------------------------------------------------------------------------


class QuickReplyForm(FlaskForm):
    shortcut = StringField(
        _l("Shortcut"),
        validators=[DataRequired(message=_l("Give the reply a shortcut.")), Length(max=40)],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    text = TextAreaField(
        _l("Text"),
        validators=[DataRequired(message=_l("Write the reply's text."))],
        render_kw={"data-limit": QUICK_REPLY_MAX, "rows": 4},
    )


class PreferencesForm(FlaskForm):
    """The language and time zone of the signed-in user (choices filled by the view)."""

    language = SelectField(_l("Language"), validate_choice=True)
    timezone = SelectField(_l("Time zone"), validate_choice=True)
