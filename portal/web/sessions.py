"""Sessions pages: the list with live badges, the create form, and the detail page whose QR refreshes itself
and gives way to the WORKING state without a reload."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from portal.extensions import htmx
from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.models import WahaSession
from portal.permissions import LINK_PHONE
from portal.services import session_secrets
from portal.services import sessions as sessions_service
from portal.services.errors import NotFound, ServiceError
from portal.tenancy import require
from portal.web import once
from portal.web.forms import ConfirmForm, PairingCodeForm, PasskeyForm, SessionCreateForm
from portal.web.helpers import apply_service_error, confirm_page, page, page_or_fragment, principal, redirect_to
from portal.web.wording import say_exc

bp = Blueprint("sessions", __name__, url_prefix="/sessions")

# The page follows its session in every status: every few seconds on the way to WORKING, a little less often
# once settled (a WORKING session can still fail or be logged out from the phone at any moment).
POLL_SECONDS = 3
SETTLED_POLL_SECONDS = 5


@dataclass(frozen=True)
class Action:
    label: str
    question: str
    consequence: str
    done: str
    service: str  # name of the function in services.sessions
    danger: bool = False


ACTIONS: dict[str, Action] = {
    "start": Action(
        _l("Start"),
        _l("Start this session?"),
        _l("WhatsApp connects again. If the phone was unlinked you will scan a new QR code."),
        _l("Session starting."),
        "start_session",
    ),
    "stop": Action(
        _l("Stop"),
        _l("Stop this session?"),
        _l("No messages are sent or received until you start it again. The phone stays linked."),
        _l("Session stopped."),
        "stop_session",
    ),
    "restart": Action(
        _l("Restart"),
        _l("Restart this session?"),
        _l("It disconnects for a few seconds and then reconnects with the same phone."),
        _l("Session restarting."),
        "restart_session",
    ),
    "logout": Action(
        _l("Log out"),
        _l("Log this session out of WhatsApp?"),
        _l("The phone is unlinked. To use the session again you scan a new QR code."),
        _l("Session logged out. Scan the new QR code to link a phone."),
        "logout_session",
        danger=True,
    ),
    "delete": Action(
        _l("Delete"),
        _l("Delete this session for good?"),
        _l("The phone is unlinked and the session and its message log are removed. This cannot be undone."),
        _l("Session deleted."),
        "delete_session",
        danger=True,
    ),
}


def _tenant() -> Any:
    return principal().tenant


@bp.route("/")
@login_required
@require("sessions:read")
def index() -> ResponseReturnValue:
    sessions = sessions_service.list_sessions(_tenant())
    return page_or_fragment("sessions/index.html", "sessions/_list.html", sessions=sessions)


@bp.route("/new", methods=["GET", "POST"])
@login_required
@require("sessions:write")
def create() -> ResponseReturnValue:
    form = SessionCreateForm()
    status = 200
    if not form.is_submitted():
        form.idempotency_key.data = uuid.uuid4().hex
    elif not form.validate():
        status = 400  # the form again, with what to fix, as every refused form answers
    else:
        try:
            session = sessions_service.create_session(
                _tenant(),
                principal().actor(),
                name=form.name.data.strip(),
                engine=form.engine.data or None,
                webhook_url=form.webhook_url.data or None,
                webhook_events=(form.webhook_events.data or None) if form.webhook_url.data else None,
                idempotency_key=form.idempotency_key.data or None,
            )
        except ServiceError as exc:
            apply_service_error(
                form, exc, {"webhook": "webhook_url", "events": "webhook_events", "code:session_exists": "name"}
            )
            status = exc.status
        else:
            flash(
                _("Session “%(name)s” created. Scan the QR code with WhatsApp on your phone.", name=session.name),
                "success",
            )
            if session.webhook_url:
                # events go to the tenant's own URL, signed: its secret first, shown once
                return _show_secret_once(session, session_secrets.secret_for(session), rotated=False)
            # No webhook URL, nothing signed yet: straight on to linking a phone (a secret is made on demand).
            return redirect_to(url_for("sessions.detail", session_id=session.id))
    return render_template("sessions/new.html", form=form), status


@bp.route("/<session_id>")
@login_required
@require("sessions:read")
def detail(session_id: str) -> ResponseReturnValue:
    session = sessions_service.get_session(_tenant(), session_id)
    live = _live_state(session)
    return render_template(
        "sessions/detail.html", pairing_form=PairingCodeForm(), passkey_form=PasskeyForm(), actions=ACTIONS, **live
    )


@bp.route("/<session_id>/live")
@login_required
@require("sessions:read")
def live(session_id: str) -> ResponseReturnValue:
    """The self-replacing status block: status, QR and its lifetime. It keeps polling in every status; when the
    status differs from the one the page shows, the controls and the pairing panel are refreshed with it."""
    try:
        session = sessions_service.get_session(_tenant(), session_id)
    except NotFound:
        if not htmx:
            raise
        # Deleted while its page was open (another tab, the API, a colleague): leave the page for the list.
        flash(_("That session no longer exists; it was deleted."), "info")
        return redirect_to(url_for("sessions.index"))
    state = _live_state(session)
    # The page tells which status it shows, so only a real change is announced and redraws the controls.
    changed = request.args.get("shown") != state["session"].status
    return render_template(
        "sessions/_status.html",
        oob=True,
        actions=ACTIONS,
        announce=changed,
        pairing_form=PairingCodeForm(),
        passkey_form=PasskeyForm(),
        **state,
    )


def _live_state(session: Any) -> dict[str, Any]:
    may_link = principal().can(LINK_PHONE)
    state = sessions_service.watch_session(_tenant(), session, may_link=may_link)
    return {**state, "poll_seconds": SETTLED_POLL_SECONDS if state["settled"] else POLL_SECONDS, "may_link": may_link}


@bp.route("/<session_id>/pairing-code", methods=["POST"])
@login_required
@require(LINK_PHONE)
def pairing_code(session_id: str) -> ResponseReturnValue:
    session = sessions_service.get_session(_tenant(), session_id)
    form = PairingCodeForm()
    code = None
    if form.validate_on_submit():
        try:
            code = sessions_service.request_pairing_code(_tenant(), session.id, form.phone.data, principal().actor())
        except ServiceError as exc:
            if exc.code == "session_not_ready":
                exc = type(exc)(
                    _("Pairing codes are available once the QR code is shown. Wait a moment and try again."),
                    code=exc.code,
                )
            else:
                exc = type(exc)(say_exc(exc), code=exc.code, details=exc.details)
            apply_service_error(form, exc)
    return page_or_fragment(
        "sessions/pairing.html", "sessions/_pairing.html", session=session, pairing_form=form, code=code
    )


# Fields of the assertion a service error may name; the page has one box for all of it.
_ASSERTION_FIELDS = dict.fromkeys(
    (
        "id",
        "rawId",
        "type",
        "response",
        "response.clientDataJSON",
        "response.authenticatorData",
        "response.signature",
        "response.userHandle",
    ),
    "assertion",
)


@bp.route("/<session_id>/passkey", methods=["POST"])
@login_required
@require(LINK_PHONE)
def passkey(session_id: str) -> ResponseReturnValue:
    """Hand WAHA the passkey assertion made on web.whatsapp.com (the session asks for its passkey)."""
    session = sessions_service.get_session(_tenant(), session_id)
    form = PasskeyForm()
    if form.validate_on_submit():
        try:
            sessions_service.submit_passkey(_tenant(), session.id, form.assertion.data, principal().actor())
        except ServiceError as exc:
            apply_service_error(form, exc, {**_ASSERTION_FIELDS, "code:session_not_ready": "assertion"})
        else:
            flash(_("WhatsApp has the passkey. The session links the phone in a moment."), "success")
            return redirect_to(url_for("sessions.detail", session_id=session.id))
    state = _live_state(session)
    context = {**state, "pairing_form": PairingCodeForm(), "passkey_form": form, "actions": ACTIONS}
    return page_or_fragment("sessions/detail.html", "sessions/_pairing_panel.html", **context), 400


@bp.route("/<session_id>/passkey/confirm", methods=["POST"])
@login_required
@require(LINK_PHONE)
def passkey_confirm(session_id: str) -> ResponseReturnValue:
    """The code the portal shows matches the phone's: finish the passkey pairing."""
    session = sessions_service.get_session(_tenant(), session_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            sessions_service.confirm_passkey(_tenant(), session.id, principal().actor())
        except ServiceError as exc:
            flash(say_exc(exc), "error")
        else:
            flash(_("Confirmed. The session links the phone in a moment."), "success")
    return redirect_to(url_for("sessions.detail", session_id=session.id))


@bp.route("/<session_id>/screenshot")
@login_required
@require("sessions:read")
def screenshot(session_id: str) -> ResponseReturnValue:
    session = sessions_service.get_session(_tenant(), session_id)
    shot = error = None
    try:
        shot = sessions_service.get_screenshot(_tenant(), session.id, may_link=principal().can(LINK_PHONE))
    except ServiceError as exc:
        error = say_exc(exc)
    return page_or_fragment(
        "sessions/screenshot.html", "sessions/_screenshot.html", session=session, shot=shot, error=error
    )


def _show_secret_once(session: WahaSession, secret: str, *, rotated: bool) -> ResponseReturnValue:
    """Redirect to the page that shows the session's webhook signing secret once; the secret waits server-side
    for that page's one read (never in a URL, a cookie or a flash)."""
    key = once.keep_for_viewer(
        "session-webhook-secret", {"session_id": session.id, "secret": secret, "rotated": rotated}
    )
    return redirect_to(url_for("sessions.webhook_secret_shown", session_id=session.id, key=key))


@bp.route("/<session_id>/webhook-secret", methods=["GET", "POST"])
@login_required
@require("sessions:write")
def rotate_webhook_secret(session_id: str) -> ResponseReturnValue:
    """GET: the confirmation page. POST: make a new signing secret and show it once."""
    session = sessions_service.get_session(_tenant(), session_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        session, secret = session_secrets.rotate(_tenant(), session.id, principal().actor())
        return _show_secret_once(session, secret, rotated=True)
    return confirm_page(
        form,
        title=_("New webhook secret for %(name)s", name=session.name),
        heading=_("Make a new webhook signing secret?"),
        subject=(_("Session"), session.name),
        message=_(
            "The new secret is shown once; from then on every delivery to the session's webhook URL is signed "
            "with it and checks with the old secret fail."
        ),
        action=url_for("sessions.rotate_webhook_secret", session_id=session.id),
        button=_("Make a new secret"),
        cancel=url_for("sessions.detail", session_id=session.id),
        trail=_trail(session),
        here=_("New webhook secret"),
    )


@bp.get("/<session_id>/webhook-secret/<key>")
@login_required
@require("sessions:write")
def webhook_secret_shown(session_id: str, key: str) -> ResponseReturnValue:
    session = sessions_service.get_session(_tenant(), session_id)
    kept = once.take_for_viewer("session-webhook-secret", key)
    if kept is None or kept.get("session_id") != session.id:
        return once.gone(
            _("The signing secret was shown already"),
            _(
                "A signing secret is shown only once and cannot be shown again. If you did not copy it, make a new one "
                "on the session's page."
            ),
            back=url_for("sessions.detail", session_id=session.id),
            back_label=_("Back to the session"),
        )
    return page(
        "sessions/webhook_secret.html",
        no_store=True,
        session=session,
        secret=str(kept["secret"]),
        rotated=bool(kept["rotated"]),
    )


@bp.route("/<session_id>/<action>", methods=["GET", "POST"])
@login_required
@require("sessions:write")
def act(session_id: str, action: str) -> ResponseReturnValue:
    """GET: a confirmation page (for browsers without scripts). POST: do it. Buttons on the detail page
    post straight here after the browser's own confirm dialog (hx-confirm)."""
    if action not in ACTIONS:
        abort(404)
    spec = ACTIONS[action]
    session = sessions_service.get_session(_tenant(), session_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            getattr(sessions_service, spec.service)(_tenant(), session.id, principal().actor())
        except ServiceError as exc:
            if htmx:
                return render_template("sessions/_action_error.html", message=say_exc(exc), action=spec)
            form.form_errors.append(say_exc(exc))
        else:
            flash(spec.done, "success")
            target = (
                url_for("sessions.index") if action == "delete" else url_for("sessions.detail", session_id=session.id)
            )
            return redirect_to(target)
    return confirm_page(
        form,
        title=f"{spec.label} {session.name}",
        heading=spec.question,
        subject=(_("Session"), session.name),
        message=spec.consequence,
        action=url_for("sessions.act", session_id=session.id, action=action),
        button=spec.label,
        danger=spec.danger,
        cancel=url_for("sessions.detail", session_id=session.id),
        trail=_trail(session),
        here=spec.label,
    )


def _trail(session: WahaSession) -> list[tuple[str, str]]:
    """The breadcrumbs of a session's own pages."""
    return [
        (_("Sessions"), url_for("sessions.index")),
        (session.name, url_for("sessions.detail", session_id=session.id)),
    ]
