"""Forms of the campaign wizard and the opt-out pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, IntegerField, RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from portal.web.forms import CheckboxListField

_HHMM = r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"


class CampaignForm(FlaskForm):
    """The wizard: 1 sessions and name, 2 audience, 3 message, 4 schedule (one form, shown step by step)."""

    name = StringField("Campaign name", validators=[DataRequired(message="Give the campaign a name."), Length(max=200)])
    session_ids = CheckboxListField("Send through", validate_choice=False)
    audience = RadioField(
        "Audience", choices=[("csv", "Upload a CSV file"), ("tag", "Contacts with a tag")], default="csv"
    )
    csv_file = FileField("CSV file")
    tag = StringField("Contact tag", validators=[Optional(), Length(max=40)])
    template = TextAreaField(
        "Message",
        validators=[DataRequired(message="Write the message to send.")],
        render_kw={"data-limit": 4096, "rows": 5},
    )
    media_file = FileField("Attachment (optional)")
    start_at = StringField("Start at (UTC, optional)", validators=[Optional()], render_kw={"type": "datetime-local"})
    quiet_start = StringField(
        "Quiet hours from (your time zone)",
        validators=[Optional(), Regexp(_HHMM, message="HH:MM")],
        render_kw={"type": "time"},
    )
    quiet_end = StringField(
        "Quiet hours until (your time zone)",
        validators=[Optional(), Regexp(_HHMM, message="HH:MM")],
        render_kw={"type": "time"},
    )
    daily_cap = IntegerField(
        "Daily cap per session", validators=[Optional(), NumberRange(min=1, max=100_000)], render_kw={"min": 1}
    )


class OptOutAddForm(FlaskForm):
    phone = StringField("Phone number", validators=[DataRequired(message="Enter a phone number."), Length(max=64)])
    note = StringField("Note (optional)", validators=[Optional(), Length(max=200)])


class OptOutImportForm(FlaskForm):
    file = FileField("CSV file (a phone column, or one number a line)")


class OptOutSettingsForm(FlaskForm):
    keywords = TextAreaField("Opt-out keywords (one a line)", render_kw={"rows": 8})
    confirm = BooleanField("Answer an opt-out with a confirmation")
    confirm_text = TextAreaField("Confirmation text", validators=[Optional(), Length(max=1000)], render_kw={"rows": 3})
