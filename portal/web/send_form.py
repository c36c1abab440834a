"""The send form's keeping of what people typed: one idempotency key per form instance (stable across
re-renders and across Back), and the form given back with its text when the CSRF token went stale, the sign-in
expired or the body was too large to read."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Response, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import RequestEntityTooLarge

from portal.extensions import htmx
from portal.i18n import gettext as _
from portal.models import WahaSession
from portal.services import idempotency
from portal.services import sessions as sessions_service
from portal.tenancy import current_principal
from portal.web import uploads
from portal.web.forms import SendMessageForm, choices
from portal.web.wording import status_label

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def form_key(candidate: Any) -> str:
    """The key of this form instance: the one it carries (hidden field, or `form_key` in the page's URL that
    the browser keeps for Back), or a new one for a new form."""
    if isinstance(candidate, str) and _KEY.match(candidate) and not idempotency.is_reserved(candidate):
        return candidate
    return uuid.uuid4().hex


def new_key() -> str:
    """A key for a new message (the form's content changed after its key was used)."""
    return uuid.uuid4().hex


def session_choices(form: SendMessageForm, sessions: list[WahaSession]) -> None:
    """Offer the tenant's sessions, each with its status."""
    form.session_id.choices = choices([(s.id, f"{s.name} ({status_label(s.status).lower()})") for s in sessions])


def stale_form(exc: CSRFError) -> Response:
    """The send form as it was posted, with a fresh CSRF token and a sentence on what happened: nothing was
    sent, the text is still here, press Send again (after signing in, when the sign-in expired)."""
    if current_user.is_authenticated:
        message = _(
            "This form was open for a long time, so for your safety nothing was sent. Your text is kept: "
            "press Send again."
        )
    else:
        message = _(
            "You were signed out, so nothing was sent. Your text is kept: sign in again in another tab, "
            "then come back and press Send."
        )
    return refused_form(message, 400, request.form)


def too_large(exc: RequestEntityTooLarge) -> Response:
    """A body past the hard cap: the send form again, empty but for the reason, with status 413."""
    uploads.drain_body()
    return refused_form(uploads.too_large_message(request.content_length), 413)


def refused_form(message: str, status: int, formdata: Any = None) -> Response:
    """The send form again (what was posted, when it could be read) with `message` at its top."""
    form = SendMessageForm(formdata=formdata, meta={"csrf": True})
    form.idempotency_key.data = form_key(form.idempotency_key.data)
    signed_in = current_user.is_authenticated
    sessions: list[WahaSession] = []
    if signed_in:
        found = current_principal()
        sessions = sessions_service.list_sessions(found.tenant) if found is not None else []
        session_choices(form, sessions)
    else:
        form.session_id.choices = choices([(form.session_id.data or "", _("The session you chose"))])
    form.form_errors.append(message)
    uploads.limit_file_field(form)
    context: dict[str, Any] = {
        "form": form,
        "sessions": sessions or [None],
        "login_url": None if signed_in else url_for("auth.login"),
    }
    if htmx and status != 413:
        # htmx swaps only 2xx (and, as configured in base.html, 413) answers: the form comes back in place.
        status = 200
    template = "messages/_send_form.html" if htmx else "messages/send.html"
    return Response(render_template(template, **context), status=status)
