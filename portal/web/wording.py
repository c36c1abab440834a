"""What a person reads when something did not work: one sentence about what they can do, chosen by the error's
stable code. Services keep their precise messages for the API and the logs; pages show these words."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask_babel.speaklater import LazyString

from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.i18n import ngettext, translated
from portal.services import outbox, upstream

# code -> the sentence a person reads. {status} and {retry} are filled in when known.
WORDS: dict[str, LazyString] = {
    "waha_unavailable": _l(
        "The WhatsApp server cannot be reached right now, so nothing was done. Try again in a "
        "minute; if it keeps happening, ask your administrator to check the WAHA server."
    ),
    "session_not_ready": _l(
        "The session is not connected to WhatsApp right now ({status}). Open the session and "
        "link a phone, or wait until it shows Working, then try again."
    ),
    "session_missing_on_waha": _l(
        "The WhatsApp server no longer has this session. Press Start on the session's page to set it up again."
    ),
    "not_supported": _l(
        "The WhatsApp server of this session cannot do this. Ask your administrator which features it offers."
    ),
    "rate_limited": _l("Too much at once. Wait {retry} and try again."),
    "forbidden": _l("Your role does not allow this. Ask an owner or admin of this tenant."),
    # the API's own words name its field (ignoreOptOut); a page names its checkbox
    "recipient_opted_out": _l(
        "The recipient opted out of your messages. An owner or admin may still send from the Send page, with "
        "“Send even though the number is on the opt-out list” ticked."
    ),
    "unauthorized": _l("You are signed out. Sign in again and try once more."),
    "payload_too_large": _l("That upload is too large. Choose a smaller file and try again."),
    "internal_error": _l(
        "Something went wrong on our side and it has been logged. Try again; if it keeps "
        "failing, give the reference below to your administrator."
    ),
}
# Stored errors that are a program's words, not a person's: "SomeError: ...", "WAHA ...", tracebacks.
_INTERNAL = re.compile(r"^(WAHA\b|[A-Z][A-Za-z]+(Error|Exception|Unavailable|Timeout|Refused)\b|Traceback)")
# A session that waits for its QR code: the pairing code and the QR need exactly that state.
SCAN_ONLY = _l(
    "This works only while the session shows its QR code. Start or restart the session and try again "
    "once the QR code appears."
)


def say(
    code: str | None, message: str | None = None, details: dict[str, Any] | None = None, retry_after: int | None = None
) -> str:
    """The words for an error code; the service's own message where it already speaks to people."""
    details = details or {}
    if code == "session_not_ready" and "SCAN_QR_CODE" in (details.get("expected") or []):
        return str(SCAN_ONLY)
    template = WORDS.get(code or "")
    if template is None:
        return translated(message) or _("That did not work. Try again in a moment.")
    status = str(details.get("status") or _("not connected")).replace("_", " ").lower()
    retry = ngettext("%(num)s second", "%(num)s seconds", retry_after) if retry_after else _("a moment")
    return str(template).format(status=status, retry=retry)


def say_exc(exc: Any) -> str:
    """say() for a ServiceError."""
    return say(
        getattr(exc, "code", None),
        getattr(exc, "message", str(exc)),
        getattr(exc, "details", None),
        getattr(exc, "retry_after", None),
    )


# The portal's own "Not sent: <reason>" texts (services.upstream, services.outbox), stored in English on the row,
# as the reader's language says them.
_UNREACHABLE = ("timeout", "unreachable", "circuit_open", "busy", "unavailable")
_STORED_REASON = {f"Not sent: {text}": code for code, text in upstream.REASONS.items()}


def failed_send(error: str | None) -> str:
    """Why a message was not sent, from the error stored on its row (a WAHA client error's text, or the portal's
    own "Not sent: ..." sentence)."""
    text = (error or "").strip()
    code = _STORED_REASON.get(text)
    if code in _UNREACHABLE:
        return _("Not sent: the WhatsApp server could not be reached. Send it again.")
    if code == "refused":
        return _("Not sent: WhatsApp refused this message. Check the number and the attachment, then send it again.")
    if code == "failed":
        return _("Not sent: the WhatsApp server had a problem. Send it again.")
    if text == outbox.NOT_CONFIRMED:
        return _("Not sent: WhatsApp never confirmed this message.")
    if text.startswith("Not sent: "):  # another sentence of the portal's: said once, not "Not sent: Not sent: ..."
        return _("Not sent: %(reason)s.", reason=text.removeprefix("Not sent: ").rstrip("."))
    if text.startswith("WAHA: ") or text.startswith(("WAHA 502", "WAHA 503", "WAHA 504")):
        return _("Not sent: the WhatsApp server could not be reached. Send it again.")
    if text.startswith("WAHA 422") and "status" in text.lower():
        return _("Not sent: the session was not connected to WhatsApp. Link the phone again, then send it again.")
    if text.startswith(("WAHA 401", "WAHA 403")):
        return _("Not sent: the WhatsApp server refused the portal's credentials. Tell your administrator.")
    if text.startswith("WAHA 5"):
        return _("Not sent: the WhatsApp server had a problem. Send it again.")
    if text.startswith("WAHA 4"):
        return _("Not sent: WhatsApp refused this message. Check the number and the attachment, then send it again.")
    if text and not _INTERNAL.match(text):
        # already a reason a person can read (set by the portal)
        return _("Not sent: %(reason)s.", reason=text.rstrip("."))
    return _("Not sent. Send it again; if it fails again, tell your administrator.")


def unreachable(error: str | None) -> str:
    """A health check's failure in words (the technical reason stays in the logs and on the servers page)."""
    return _("Cannot be reached right now.") if error else ""


# A role's name as people read it (the codes stay English in the API, the audit log and the database).
ROLE_LABELS: dict[str, LazyString] = {
    "owner": _l("Owner"),
    "admin": _l("Admin"),
    "operator": _l("Operator"),
    "viewer": _l("Viewer"),
}


# A WAHA session status as people read it (the codes stay as WAHA spells them in the API and in data-status).
STATUS_LABELS: dict[str, LazyString] = {
    "WORKING": _l("Working"),
    "SCAN_QR_CODE": _l("Scan QR code"),
    "STARTING": _l("Starting"),
    "STOPPED": _l("Stopped"),
    "FAILED": _l("Failed"),
    "PASSKEY_REQUIRED": _l("Passkey needed"),
    "PASSKEY_CONFIRMATION_REQUIRED": _l("Confirm passkey"),
}


def status_label(status: str | None) -> str:
    return str(STATUS_LABELS.get(status or "", (status or "").replace("_", " ").capitalize()))


def role_label(role: str | None, lower: bool = True) -> str:
    """A role's name: lower-case inside a sentence or a badge ("owner"), capitalised as a choice ("Owner")."""
    label = str(ROLE_LABELS.get(role or "", role or ""))
    return label.lower() if lower else label


SCHEDULED_STATES: dict[str, LazyString] = {
    "queued": _l("Waiting"),
    "sending": _l("Being sent"),
    "sent": _l("Sent"),
    "failed": _l("Failed"),
    "cancelled": _l("Cancelled"),
    "skipped": _l("Skipped"),
}


def scheduled_state(item: Any) -> tuple[str, str]:
    """A scheduled message's state in words, and what holds it or why it ended (the queue stores codes and its
    own English notes: services.outreach.sending)."""
    state = str(SCHEDULED_STATES.get(item.state, item.state))
    error = (item.last_error or "").strip()
    if item.state == "queued" and error.startswith(("waha_unavailable", "storage_unavailable")):
        return state, _("The WhatsApp server could not be reached; it is tried again.")
    if error == "opted_out":
        return state, _("The recipient opted out of your messages.")
    if error == "quota_exceeded":
        return state, _("The plan's message quota is used up; it waits until the count starts again.")
    if error == "unconfirmed":
        return state, _("WhatsApp has not confirmed it yet.")
    if item.state == "failed":
        return state, failed_send(error.partition(": ")[2] or error)
    return state, ""


def init_app(app: Flask) -> None:
    from portal.services.number_health import summary as limit_summary

    app.jinja_env.globals.update(
        say_error=say,
        failed_send=failed_send,
        unreachable=unreachable,
        limit_summary=limit_summary,
        role_label=role_label,
        status_label=status_label,
        scheduled_state=scheduled_state,
    )
