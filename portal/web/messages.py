"""Messaging pages: send text or media, the message log with filters and live ticks, a session's chats, media.

A conversation's address opens it in the inbox (`inbox.index?chat=`): the log stays the audit-style view.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename

from portal.extensions import htmx
from portal.i18n import gettext as _
from portal.i18n import in_zone
from portal.models import Tenant, WahaSession
from portal.security import safe_next
from portal.services import inbox as inbox_service
from portal.services import media as media_service
from portal.services import messages as messages_service
from portal.services import optouts, outreach
from portal.services import sessions as sessions_service
from portal.services.errors import NotFound, ServiceError
from portal.services.messages import POLL_SECONDS, FreshRows, LiveView, LogFilters
from portal.storage.serving import send_stored
from portal.tenancy import require
from portal.web import uploads
from portal.web.forms import MessageFilterForm, SendMessageForm, choices
from portal.web.helpers import STOP_POLLING, apply_service_error, principal, reads_only, redirect_to
from portal.web.list_filters import log_filters
from portal.web.log_rows import TICKS, filter_field, log_rows
from portal.web.send_form import form_key, new_key, session_choices, stale_form, too_large
from portal.web.wording import WORDS, say_exc

bp = Blueprint("messages", __name__, url_prefix="/messages")
# A stale CSRF token (or an expired sign-in) on the send form gives the form back with the text kept.
bp.register_error_handler(CSRFError, stale_form)
# Uploads over the limit: the form comes back with the text and a 413, never a dropped connection.
bp.url_value_preprocessor(uploads.allow_large_send_body)
bp.register_error_handler(RequestEntityTooLarge, too_large)
# The log's rows are worked out before rendering (portal/web/log_rows.py); the ticks' table serves the inbox too.
bp.add_app_template_global(log_rows, "log_rows")
bp.add_app_template_global(TICKS, "ticks_table")  # type: ignore[arg-type]
bp.add_app_template_global(filter_field, "filter_field")

# Types a browser may show inline (in its own image or media viewer); anything else is downloaded, so a stored
# file can never run as a page. SVG is not among them: it can carry scripts.
# Files from WhatsApp users are untrusted: whatever the browser makes of one may load nothing and run nothing.
# The image and media viewers need the file itself and their own inline styles.
MEDIA_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"


def _tenant() -> Tenant:
    return principal().tenant


def _sessions() -> list[WahaSession]:
    return sessions_service.list_sessions(_tenant())


def _fresh_arg() -> datetime | None:
    """The `fresh` query argument of a block's poll (an ISO time with its zone), or None when absent."""
    raw = request.args.get("fresh")
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        abort(400, _("That refresh link is not valid."))
    if value.tzinfo is None:
        abort(400, _("That refresh link is not valid."))
    return value


# ---- log ---------------------------------------------------------------------------------------------------


@bp.route("/")
@reads_only
@login_required
@require("messages:read")
def index() -> ResponseReturnValue:
    sessions = sessions_service.session_names(_tenant())  # the filter and the rows' links need only the names
    sessions_by_id = {s.id: s for s in sessions}
    form = MessageFilterForm(formdata=request.args)
    form.session.choices = choices([("", _("All sessions"))] + [(s.id, s.name) for s in sessions])
    valid = form.validate()
    filters = log_filters(form) if valid else LogFilters()
    view = messages_service.watch_log(_tenant(), filters, cursor=request.args.get("cursor") or None, settled=valid)
    if view.stale_cursor:
        form.form_errors.append(_("That page link is not valid any more; here are the newest messages."))
    elif view.refusal:
        form.form_errors.append(view.refusal)
    # url_for reads _method, _external, _anchor and _scheme itself: never pass those through from the query.
    query: dict[str, Any] = {k: v for k, v in request.args.items() if not k.startswith("_")}
    args: dict[str, Any] = {k: v for k, v in query.items() if k not in ("cursor", "fresh")}
    fresh = _fresh_arg()
    if fresh is not None and htmx and view.newest:
        return _fresh_block(
            "messages/_log_fresh.html",
            messages_service.watch_log_fresh(_tenant(), filters, fresh),
            sessions_by_id=sessions_by_id,
            fresh_url=url_for("messages.index", **args, fresh=fresh.isoformat()),
            newest_url=url_for("messages.index", **args),
        )
    context = {
        "form": form,
        "page": view,
        "cursor": view.cursor,
        "sessions_by_id": sessions_by_id,
        "filtered": filters.any(),
        "polling": view.polling,
        "poll_url": url_for("messages.index", **query),
        "poll_seconds": POLL_SECONDS,
        "live": view.live,
        "fresh_items": view.fresh_items,
        "settled_items": view.settled_items,
        "fresh_url": url_for("messages.index", **args, fresh=view.fresh_since.isoformat()),
        "older_url": url_for("messages.index", **{**args, "cursor": view.next_cursor}) if view.next_cursor else None,
        "newest_url": url_for("messages.index", **args),
        "export_url": url_for("exports.messages", **{k: v for k, v in args.items() if v}) if valid else None,
    }
    if htmx:
        if not view.settled:
            # The filter form itself needs to show what is wrong: load the whole page.
            return redirect_to(url_for("messages.index", **query))
        return render_template("messages/_log.html", **context), _poll_status(view)
    return render_template("messages/index.html", **context)


def _fresh_block(template: str, rows: FreshRows, **context: Any) -> str:
    """A fresh block's answer: its rows, whether more arrived than it shows, and when it asks again."""
    return render_template(
        template, fresh_items=rows.items, overflow=rows.overflow, poll_seconds=POLL_SECONDS, **context
    )


def _poll_status(view: LiveView) -> int:
    """200 while something on the page may still change; then the status that stops htmx polling."""
    return 200 if view.keeps_polling else STOP_POLLING


# ---- send --------------------------------------------------------------------------------------------------


def _friendly(exc: ServiceError, sessions_by_id: dict[str, Any], session_id: str | None) -> ServiceError:
    """The refusals people meet most, reworded to say what to do next."""
    session = sessions_by_id.get(session_id or "")
    name = f"“{session.name}”" if session is not None else _("This session")
    if exc.code == "session_not_ready":
        status = (exc.details or {}).get("status") or (session.status if session is not None else "unknown")
        return type(exc)(
            f"{name} is not connected to WhatsApp (status {status}). Open the session and link a "
            "phone first, or choose another session.",
            code=exc.code,
            details={},
        )
    if exc.status == 429:
        wait = f" Try again in {exc.retry_after} s." if exc.retry_after else " Try again in a moment."
        return type(exc)(
            f"{name} is sending faster than its limit allows, which protects the number from a WhatsApp ban.{wait}",
            code=exc.code,
            details={},
        )
    if exc.code in WORDS:
        return type(exc)(say_exc(exc), code=exc.code, details={})
    return exc


def _send_aliases(form: SendMessageForm) -> dict[str, str]:
    """Where the service's field names land on the send form."""
    file_field = "media_url" if form.media_url.data else "media_file"
    return {
        "chat_id": "to",
        "session": "session_id",
        "media": file_field,
        "media.data": "media_file",
        "media.url": "media_url",
        "media.filename": file_field,
        "media.mimetype": file_field,
        "media.kind": "media_kind",
        "media.caption": "text",
        "sendAt": "send_at",
        "code:session_not_ready": "session_id",
        "code:session_not_found": "session_id",
        "code:media_too_large": file_field,
    }


@bp.route("/send", methods=["GET", "POST"])
@login_required
@require("messages:send")
def send() -> ResponseReturnValue:
    sessions = _sessions()
    sessions_by_id = {s.id: s for s in sessions}
    form = SendMessageForm()
    session_choices(form, sessions)
    if not form.is_submitted():
        wanted = request.args.get("session")
        working = next((s.id for s in sessions if s.status == "WORKING"), None)
        form.session_id.data = wanted if wanted in sessions_by_id else working
        form.to.data = request.args.get("to", "")
        form.next.data = safe_next(request.args.get("next")) or ""
        form.idempotency_key.data = form_key(request.args.get("form_key"))
    else:
        # One key per form instance, kept across re-renders: sending the same form twice sends once.
        form.idempotency_key.data = form_key(form.idempotency_key.data)
    status = 200
    if form.validate_on_submit():
        if form.session_id.data not in sessions_by_id:
            form.session_id.errors = [_("Choose one of your sessions.")]
        else:
            text = (form.text.data or "").strip() or None
            try:
                media = uploads.media_from(form, caption=text)
                if form.send_at.data is not None:
                    return _schedule(form, text, media)

                override = bool(form.ignore_opt_out.data)
                if override:
                    who = principal()
                    optouts.check_override(who.tenant.id, who.kind, who.actor_id, who.role)

                def attempt() -> Any:
                    return messages_service.send_message(
                        _tenant(),
                        form.session_id.data,
                        principal().actor(),
                        to=form.to.data.strip(),
                        text=None if media else text,
                        media=media,
                        idempotency_key=form.idempotency_key.data,
                        source="portal",
                        ignore_opt_out=override,
                    )

                try:
                    message = attempt()
                except ServiceError as exc:
                    if exc.code != "idempotency_key_reused":
                        raise
                    # The form's key went with other content (edited after a refusal): this is a new message.
                    form.idempotency_key.data = new_key()
                    message = attempt()
            except ServiceError as exc:
                apply_service_error(form, _friendly(exc, sessions_by_id, form.session_id.data), _send_aliases(form))
                if exc.code == "media_too_large":
                    status = 413
            else:
                if message.status == "ERROR":
                    # The same form was sent before and that attempt failed: say so; the next press is new.
                    form.form_errors.append(
                        _("This message was not sent: an earlier attempt failed. Press Send to try again.")
                    )
                    form.idempotency_key.data = new_key()
                else:
                    flash(_("Message sent. The ticks show when it is delivered and read."), "success")
                    target = safe_next(form.next.data) or url_for(
                        "messages.conversation", session_id=message.session_id, chat_id=message.chat_id
                    )
                    return redirect_to(target)
    uploads.limit_file_field(form)
    context = {"form": form, "sessions": sessions}
    if htmx:
        return render_template("messages/_send_form.html", **context), status
    return render_template("messages/send.html", **context), status


def _schedule(form: SendMessageForm, text: str | None, media: dict[str, Any] | None) -> ResponseReturnValue:
    """Queue the form's message for its "Send later" time (the tenant's time zone); the form's key makes a
    second press answer the first scheduled message."""
    tenant = _tenant()
    item = outreach.schedule_message(
        tenant,
        form.session_id.data,
        principal().actor(),
        to=form.to.data.strip(),
        send_at=outreach.tenant_time(tenant.id, form.send_at.data, field="sendAt"),
        text=None if media else text,
        media=media,
        idempotency_key=form.idempotency_key.data,
    )
    zone = outreach.outreach_settings(tenant.id).zone
    when = in_zone(item.not_before, zone) if item.not_before else ""
    flash(_("Message scheduled for %(when)s. It waits in the session's send queue until then.", when=when), "success")
    return redirect_to(safe_next(form.next.data) or url_for("outreach.scheduled"))


# ---- chats ----------------------------------------------------------------------------------------------


@bp.route("/chats/<session_id>")
@login_required
@require("messages:read")
def chats(session_id: str) -> ResponseReturnValue:
    session = sessions_service.get_session(_tenant(), session_id)
    return render_template(
        "messages/chats.html", session=session, chats=messages_service.list_chats(_tenant(), session.id)
    )


@bp.route("/chats/<session_id>/<chat_id>")
@login_required
@require("messages:read")
def conversation(session_id: str, chat_id: str) -> ResponseReturnValue:
    """A conversation's address (the log's links, a send's answer, old bookmarks): the inbox with that chat open.

    A chat the inbox does not have (no message with it yet) opens the inbox on the session's chats with a notice;
    another tenant's session is a 404 (find_chat checks the session first)."""
    try:
        chat = inbox_service.find_chat(_tenant(), session_id, chat_id)
    except NotFound as exc:
        if exc.code != "chat_not_found":
            raise
        flash(_("There is no conversation with that chat in this session yet; here are the session's chats."), "info")
        return redirect(url_for("inbox.index", session=session_id), code=303)
    return redirect(url_for("inbox.index", chat=chat.id), code=303)


# ---- media -------------------------------------------------------------------------------------------------


@bp.route("/<int(big=True):message_id>/media")
@login_required
@require("messages:read")
def media(message_id: int) -> ResponseReturnValue:
    message = messages_service.get_message(_tenant(), message_id)  # another tenant's id is a 404 here
    stored = media_service.media_file(_tenant(), message.id)
    # the service serves only allow-listed types (others as application/octet-stream); these may show inline
    inline = media_service.served_type(stored.mimetype).inline and request.args.get("download") != "1"
    name = secure_filename(stored.download_name or "") or f"message-{message.id}"
    response = send_stored(
        replace(stored, download_name=name),
        as_attachment=not inline,
        missing=media_service.media_gone(),
        # Tenant files: the browser may keep them a while, shared caches never.
        cache_control="private, max-age=300",
    )
    response.headers["Content-Security-Policy"] = MEDIA_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
