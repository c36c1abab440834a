"""Flask-WTF forms of the portal (CSRF on each)."""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import URL, DataRequired, Email, Length, Optional, Regexp, ValidationError

from portal.inputs import CalendarRange
from portal.models import ENGINES
from portal.services.forwarding import COMMON_EVENTS


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Keep me signed in on this device")
    next = StringField()  # where to go after sign-in; checked to stay on this site


class TenantSwitchForm(FlaskForm):
    tenant_id = StringField(validators=[DataRequired(), Length(max=20)])


# ---- sessions and messaging -------------------------------------------------------------------------------


def choices(pairs: Iterable[tuple[str, str]]) -> list[SelectChoice]:
    """(value, label) pairs as the select options WTForms wants."""
    return [SelectChoice(value, label) for value, label in pairs]


DEFAULT_SESSION_EVENTS = ["session.status", "message", "message.ack"]
MEDIA_KINDS = [
    ("", "Work it out from the file"),
    ("image", "Image"),
    ("document", "Document"),
    ("audio", "Voice / audio"),
    ("video", "Video"),
]
MESSAGE_STATUSES = [
    ("", "Any status"),
    ("PENDING", "Pending"),
    ("SERVER", "Sent (✓)"),
    ("DEVICE", "Delivered (✓✓)"),
    ("READ", "Read"),
    ("PLAYED", "Played"),
    ("ERROR", "Failed"),
]


class CheckboxListField(SelectMultipleField):
    """A group of checkboxes (templates render it in a fieldset or a labelled group)."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class SessionCreateForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[
            DataRequired(message="Give the session a name."),
            Length(max=100),
            Regexp(r"^[\w .-]+$", message="Use letters, digits, spaces, dots, dashes or underscores."),
        ],
    )
    engine = SelectField(
        "Engine", choices=choices([("", "The server's default")] + [(e, e) for e in ENGINES]), validate_choice=True
    )
    webhook_url = StringField(
        "Forward events to (optional)",
        validators=[
            Optional(),
            Length(max=2048),
            URL(require_tld=False, message="Enter a full http:// or https:// address."),
        ],
    )
    webhook_events = CheckboxListField(
        "Events to forward", choices=choices(COMMON_EVENTS), default=DEFAULT_SESSION_EVENTS
    )
    idempotency_key = HiddenField()


class ConfirmForm(FlaskForm):
    """A bare form: its CSRF token guards confirmation pages and action buttons."""


class DeleteTenantForm(FlaskForm):
    """Asking for the tenant's deletion: its id typed again."""

    confirm = StringField(
        _l("Type the tenant's id to confirm"),
        validators=[DataRequired(message=_l("Type the tenant's id to confirm.")), Length(max=63)],
    )


class EraseContactForm(FlaskForm):
    """Erasing a person: the number typed again, and whether it stays on the opt-out list."""

    confirm = StringField(
        _l("Type the number to confirm"),
        validators=[DataRequired(message=_l("Type the number to confirm.")), Length(max=64)],
    )
    keep_opt_out = BooleanField(_l("Keep the number on the opt-out list (no campaign writes to them again)"))


class PasskeyForm(FlaskForm):
    assertion = TextAreaField(
        "The browser's answer (JSON)",
        validators=[DataRequired(message="Paste the JSON the browser gave on web.whatsapp.com."), Length(max=16_384)],
        render_kw={"rows": 5, "spellcheck": "false", "autocomplete": "off"},
    )


class PairingCodeForm(FlaskForm):
    phone = StringField(
        "Phone number",
        validators=[
            DataRequired(message="Enter the phone number of the WhatsApp account."),
            Length(max=32),
            Regexp(r"^\+?[\d\s().-]{6,}$", message="Use digits with the country code, e.g. +49 170 1234567."),
        ],
    )


TEXT_LIMIT = 4096  # characters of a WhatsApp text or caption (services.messages.TEXT_MAX)


class SendMessageForm(FlaskForm):
    session_id = SelectField(
        "From session", validate_choice=False, validators=[DataRequired(message="Choose the session to send from.")]
    )
    to = StringField("To", validators=[DataRequired(message="Enter a phone number or chat id."), Length(max=128)])
    # No maxlength attribute: a browser would cut pasted text silently. A counter warns while typing
    # (static/js/portal.js) and the server refuses overlong text with its length.
    text = TextAreaField("Message", render_kw={"data-limit": TEXT_LIMIT, "maxlength": False})
    media_file = FileField("Attach a file")
    media_url = StringField(
        "…or a file URL",
        validators=[
            Optional(),
            Length(max=2048),
            URL(require_tld=False, message="Enter a full http:// or https:// address."),
        ],
    )
    media_kind = SelectField("Attachment type", choices=choices(MEDIA_KINDS))
    # empty: send now; a time: queue the message for then (the tenant's time zone)
    send_at = DateTimeLocalField("Send later (optional)", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    # owners and admins only (services.optouts.check_override): a receipt to a number that opted out of marketing
    ignore_opt_out = BooleanField("Send even though the number is on the opt-out list")
    idempotency_key = HiddenField()
    next = HiddenField()

    def validate_text(self, field: StringField) -> None:
        if not (field.data or "").strip() and not self.media_file.data and not self.media_url.data:
            raise ValidationError("Write a message or attach a file.")
        length = len(field.data or "")
        if length > TEXT_LIMIT:
            raise ValidationError(
                f"This message has {length:,} characters; WhatsApp takes at most {TEXT_LIMIT:,}. "
                f"Shorten it by {length - TEXT_LIMIT:,} or send it as two messages."
            )

    def validate_media_url(self, field: StringField) -> None:
        if field.data and self.media_file.data:
            raise ValidationError("Attach a file or give a URL, not both.")


class MessageFilterForm(FlaskForm):
    """The message log's filters, read from the query string (GET, so no CSRF token)."""

    class Meta:
        csrf = False

    session = SelectField("Session", validate_choice=False, default="")
    direction = SelectField(
        "Direction", choices=choices([("", "In and out"), ("in", "Received"), ("out", "Sent")]), default=""
    )
    status = SelectField("Status", choices=choices(MESSAGE_STATUSES), default="")
    chat = StringField("Chat", validators=[Optional(), Length(max=128)])
    q = StringField("Text contains", validators=[Optional(), Length(max=200)])
    since = DateField("From", validators=[Optional(), CalendarRange()])
    until = DateField("To", validators=[Optional(), CalendarRange()])

    def validate_until(self, field: DateField) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end date is before the start date.")


class ContactTagsForm(FlaskForm):
    """A contact's tags, comma-separated (the service trims, de-duplicates and checks them)."""

    tags = StringField("Tags", validators=[Length(max=1000)], render_kw={"autocomplete": "off"})
    q = HiddenField()  # the search to return to
