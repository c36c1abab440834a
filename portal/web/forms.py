"""Flask-WTF forms of the portal (CSRF on each)."""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import format_decimal
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

from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.inputs import CalendarRange
from portal.models import ENGINES
from portal.services.forwarding import COMMON_EVENTS


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Email()])
    password = PasswordField(_l("Password"), validators=[DataRequired()])
    remember = BooleanField(_l("Keep me signed in on this device"))
    next = StringField()  # where to go after sign-in; checked to stay on this site


class TenantSwitchForm(FlaskForm):
    tenant_id = StringField(validators=[DataRequired(), Length(max=20)])


# ---- sessions and messaging -------------------------------------------------------------------------------


def choices(pairs: Iterable[tuple[str, str]]) -> list[SelectChoice]:
    """(value, label) pairs as the select options WTForms wants."""
    return [SelectChoice(value, label) for value, label in pairs]


DEFAULT_SESSION_EVENTS = ["session.status", "message", "message.ack"]
MEDIA_KINDS = [
    ("", _l("Work it out from the file")),
    ("image", _l("Image")),
    ("document", _l("Document")),
    ("audio", _l("Voice / audio")),
    ("video", _l("Video")),
]
MESSAGE_STATUSES = [
    ("", _l("Any status")),
    ("PENDING", _l("Pending")),
    ("SERVER", _l("Sent (✓)")),
    ("DEVICE", _l("Delivered (✓✓)")),
    ("READ", _l("Read")),
    ("PLAYED", _l("Played")),
    ("ERROR", _l("Failed")),
]


class CheckboxListField(SelectMultipleField):
    """A group of checkboxes (templates render it in a fieldset or a labelled group)."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class SessionCreateForm(FlaskForm):
    name = StringField(
        _l("Name"),
        validators=[
            DataRequired(message=_l("Give the session a name.")),
            Length(max=100),
            Regexp(r"^[\w .-]+$", message=_l("Use letters, digits, spaces, dots, dashes or underscores.")),
        ],
    )
    engine = SelectField(
        _l("Engine"),
        choices=choices([("", _l("The server's default"))] + [(e, e) for e in ENGINES]),
        validate_choice=True,
    )
    webhook_url = StringField(
        _l("Forward events to (optional)"),
        validators=[
            Optional(),
            Length(max=2048),
            URL(require_tld=False, message=_l("Enter a full http:// or https:// address.")),
        ],
    )
    webhook_events = CheckboxListField(
        _l("Events to forward"),
        choices=choices((name, _l(label)) for name, label in COMMON_EVENTS),
        default=DEFAULT_SESSION_EVENTS,
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
        _l("The browser's answer (JSON)"),
        validators=[
            DataRequired(message=_l("Paste the JSON the browser gave on web.whatsapp.com.")),
            Length(max=16_384),
        ],
        render_kw={"rows": 5, "spellcheck": "false", "autocomplete": "off"},
    )


class PairingCodeForm(FlaskForm):
    phone = StringField(
        _l("Phone number"),
        validators=[
            DataRequired(message=_l("Enter the phone number of the WhatsApp account.")),
            Length(max=32),
            Regexp(r"^\+?[\d\s().-]{6,}$", message=_l("Use digits with the country code, e.g. +49 170 1234567.")),
        ],
    )


TEXT_LIMIT = 4096  # characters of a WhatsApp text or caption (services.messages.TEXT_MAX)


class SendMessageForm(FlaskForm):
    session_id = SelectField(
        _l("From session"),
        validate_choice=False,
        validators=[DataRequired(message=_l("Choose the session to send from."))],
    )
    to = StringField(
        _l("To"), validators=[DataRequired(message=_l("Enter a phone number or chat id.")), Length(max=128)]
    )
    # No maxlength attribute: a browser would cut pasted text silently. A counter warns while typing
    # (static/js/portal.js) and the server refuses overlong text with its length.
    text = TextAreaField(_l("Message"), render_kw={"data-limit": TEXT_LIMIT, "maxlength": False})
    media_file = FileField(_l("Attach a file"))
    media_url = StringField(
        _l("…or a file URL"),
        validators=[
            Optional(),
            Length(max=2048),
            URL(require_tld=False, message=_l("Enter a full http:// or https:// address.")),
        ],
    )
    media_kind = SelectField(_l("Attachment type"), choices=choices(MEDIA_KINDS))
    # empty: send now; a time: queue the message for then (the tenant's time zone)
    send_at = DateTimeLocalField(_l("Send later (optional)"), format="%Y-%m-%dT%H:%M", validators=[Optional()])
    # owners and admins only (services.optouts.check_override): a receipt to a number that opted out of marketing
    ignore_opt_out = BooleanField(_l("Send even though the number is on the opt-out list"))
    idempotency_key = HiddenField()
    next = HiddenField()

    def validate_text(self, field: StringField) -> None:
        if not (field.data or "").strip() and not self.media_file.data and not self.media_url.data:
            raise ValidationError(_("Write a message or attach a file."))
        length = len(field.data or "")
        if length > TEXT_LIMIT:
            raise ValidationError(
                _(
                    "This message has %(length)s characters; WhatsApp takes at most %(limit)s. "
                    "Shorten it by %(over)s or send it as two messages.",
                    length=format_decimal(length),
                    limit=format_decimal(TEXT_LIMIT),
                    over=format_decimal(length - TEXT_LIMIT),
                )
            )

    def validate_media_url(self, field: StringField) -> None:
        if field.data and self.media_file.data:
            raise ValidationError(_("Attach a file or give a URL, not both."))


class MessageFilterForm(FlaskForm):
    """The message log's filters, read from the query string (GET, so no CSRF token)."""

    class Meta:
        csrf = False

    session = SelectField(_l("Session"), validate_choice=False, default="")
    direction = SelectField(
        _l("Direction"),
        choices=choices([("", _l("In and out")), ("in", _l("Received")), ("out", _l("Sent"))]),
        default="",
    )
    status = SelectField(_l("Status"), choices=choices(MESSAGE_STATUSES), default="")
    chat = StringField(_l("Chat"), validators=[Optional(), Length(max=128)])
    q = StringField(_l("Text contains"), validators=[Optional(), Length(max=200)])
    since = DateField(_l("From"), validators=[Optional(), CalendarRange()])
    until = DateField(_l("To"), validators=[Optional(), CalendarRange()])

    def validate_until(self, field: DateField) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError(_("The end date is before the start date."))


class ContactTagsForm(FlaskForm):
    """A contact's tags, comma-separated (the service trims, de-duplicates and checks them)."""

    tags = StringField(_l("Tags"), validators=[Length(max=1000)], render_kw={"autocomplete": "off"})
    q = HiddenField()  # the search to return to
