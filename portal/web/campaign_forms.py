"""Forms of the campaign wizard and the opt-out pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField, IntegerField, RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from portal.i18n import lazy_gettext as _l
from portal.web.forms import CheckboxListField

_HHMM = r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"


class CampaignForm(FlaskForm):
    """The wizard: 1 sessions and name, 2 audience, 3 message, 4 schedule (one form, shown step by step)."""

    name = StringField(
        _l("Campaign name"), validators=[DataRequired(message=_l("Give the campaign a name.")), Length(max=200)]
    )
    session_ids = CheckboxListField(_l("Send through"), validate_choice=False)
    audience = RadioField(
        _l("Audience"), choices=[("csv", _l("Upload a CSV file")), ("tag", _l("Contacts with a tag"))], default="csv"
    )
    csv_file = FileField(_l("CSV file"))
    # The chosen CSV, carried through a page that came back with a refusal (a browser never refills a file
    # field): base64 of the file, and its name to show. A file chosen again replaces it.
    csv_kept = HiddenField()
    csv_kept_name = HiddenField()
    tag = StringField(_l("Contact tag"), validators=[Optional(), Length(max=40)])
    template = TextAreaField(
        _l("Message"),
        validators=[DataRequired(message=_l("Write the message to send."))],
        render_kw={"data-limit": 4096, "rows": 5},
    )
    media_file = FileField(_l("Attachment (optional)"))
    start_at = StringField(
        _l("Start at (UTC, optional)"), validators=[Optional()], render_kw={"type": "datetime-local"}
    )
    quiet_start = StringField(
        _l("Quiet hours from (your time zone)"),
        validators=[Optional(), Regexp(_HHMM, message=_l("HH:MM"))],
        render_kw={"type": "time"},
    )
    quiet_end = StringField(
        _l("Quiet hours until (your time zone)"),
        validators=[Optional(), Regexp(_HHMM, message=_l("HH:MM"))],
        render_kw={"type": "time"},
    )
    daily_cap = IntegerField(
        _l("Daily cap per session"), validators=[Optional(), NumberRange(min=1, max=100_000)], render_kw={"min": 1}
    )


class OptOutAddForm(FlaskForm):
    phone = StringField(
        _l("Phone number"), validators=[DataRequired(message=_l("Enter a phone number.")), Length(max=64)]
    )
    note = StringField(_l("Note (optional)"), validators=[Optional(), Length(max=200)])


class OptOutImportForm(FlaskForm):
    file = FileField(_l("CSV file (a phone column, or one number a line)"))


class OptOutSettingsForm(FlaskForm):
    keywords = TextAreaField(_l("Opt-out keywords (one a line)"), render_kw={"rows": 8})
    confirm = BooleanField(_l("Answer an opt-out with a confirmation"))
    confirm_text = TextAreaField(
        _l("Confirmation text"), validators=[Optional(), Length(max=1000)], render_kw={"rows": 3}
    )
