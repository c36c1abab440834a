"""Messaging pages: send text or media, the message log with filters and live ticks, conversations, media."""

from __future__ import annotations

import base64
import mimetypes
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlparse

from flask import Blueprint, abort, flash, render_template, request, send_file, url_for
from flask_login import login_required
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename

from portal.models import utcnow
from portal.security import safe_next
from portal.services import media as media_service
from portal.services import messages as messages_service
from portal.services import sessions as sessions_service
from portal.services.errors import Invalid, ServiceError
from portal.services.media import media_kind
from portal.tenancy import require
from portal.web import uploads
from portal.web.forms import MessageFilterForm, SendMessageForm, choices
from portal.web.helpers import apply_service_error, is_htmx, principal, redirect_to
from portal.web.send_form import form_key, new_key, stale_form
from portal.web.sessions import STOP_POLLING
from portal.web.wording import WORDS, say_exc

bp = Blueprint("messages", __name__, url_prefix="/messages")
# A stale CSRF token (or an expired sign-in) on the send form gives the form back with the text kept.
bp.register_error_handler(CSRFError, stale_form)
# Uploads over the limit: the form comes back with the text and a 413, never a dropped connection.
bp.url_value_preprocessor(uploads.allow_large_send_body)
bp.register_error_handler(RequestEntityTooLarge, uploads.too_large)

PAGE_SIZE = 50
POLL_SECONDS = 3
# Statuses an outbound message may still leave; while one is on screen the ticks refresh themselves.
IN_FLIGHT = ("PENDING", "SERVER", "DEVICE")
# Receipts rarely arrive after this long; older unread messages do not keep a page polling forever.
TICK_WINDOW = timedelta(hours=1)
# The newest page of the log and of a conversation keep a "fresh" block that re-reads, every few seconds, the
# rows created since a moment fixed when the page loaded: new messages appear and recent ticks move on with one
# keyset query. The moment lies a little before the newest row shown, so a row committed a bit after a newer
# one is not missed.
FRESH_OVERLAP = timedelta(seconds=30)
FRESH_LIMIT = 200
# Types a browser may show inline (in its own image or media viewer); anything else is downloaded, so a stored
# file can never run as a page. SVG is not among them: it can carry scripts.
# Files from WhatsApp users are untrusted: whatever the browser makes of one may load nothing and run nothing.
# The image and media viewers need the file itself and their own inline styles.
MEDIA_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"


def _tenant() -> Any:
    return principal().tenant


def _sessions() -> list[Any]:
    return sessions_service.list_sessions(_tenant())


def in_flight(messages: list[Any], now: datetime | None = None) -> bool:
    """True while a recent outbound message on screen may still get a newer tick."""
    horizon = (now or utcnow()) - TICK_WINDOW
    return any(m.direction == "out" and m.status in IN_FLIGHT and m.created_at >= horizon for m in messages)


def fresh_since(messages: list[Any], now: datetime | None = None) -> datetime:
    """Where a page's self-refreshing block starts: before the newest message shown and before every recent
    message still waiting for a tick, so both new rows and newer ticks show up in it."""
    now = now or utcnow()
    horizon = now - TICK_WINDOW
    newest = max((m.created_at for m in messages), default=now)
    waiting = [
        m.created_at for m in messages if m.direction == "out" and m.status in IN_FLIGHT and m.created_at >= horizon
    ]
    return min([newest, *waiting]) - FRESH_OVERLAP


def _fresh_arg() -> datetime | None:
    """The `fresh` query argument of a block's poll (an ISO time with its zone), or None when absent."""
    raw = request.args.get("fresh")
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        abort(400, "That refresh link is not valid.")
    if value.tzinfo is None:
        abort(400, "That refresh link is not valid.")
    return value


def chat_id_from(value: str) -> str:
    """What people type for a chat (+49 170 1234567) as WAHA spells it (491701234567@c.us); anything that is
    not a number or chat id is searched as typed."""
    try:
        return messages_service.normalize_recipient(value)
    except Invalid:
        return value.strip()


# ---- log ---------------------------------------------------------------------------------------------------


@bp.route("/")
@login_required
@require("messages:read")
def index():  # type: ignore[no-untyped-def]
    sessions = _sessions()
    form = MessageFilterForm(formdata=request.args)
    form.session.choices = choices([("", "All sessions")] + [(s.id, s.name) for s in sessions])
    filters: dict[str, Any] = {}
    if form.validate():
        filters = {
            "session_id": form.session.data or None,
            "direction": form.direction.data or None,
            "status": form.status.data or None,
            "chat_id": chat_id_from(form.chat.data) if form.chat.data else None,
            "q": (form.q.data or "").strip() or None,
            "since": datetime.combine(form.since.data, time.min, tzinfo=UTC) if form.since.data else None,
            "until": (
                datetime.combine(form.until.data, time.min, tzinfo=UTC) + timedelta(days=1) if form.until.data else None
            ),
        }
    cursor = request.args.get("cursor") or None
    try:
        page = messages_service.list_messages(_tenant(), cursor=cursor, limit=PAGE_SIZE, **filters)
    except Invalid as exc:
        fields = [f.get("field") for f in exc.details.get("fields", [])]
        if "cursor" in fields:
            # An edited or mangled page link: show the newest page and say so.
            form.form_errors.append("That page link is not valid any more; here are the newest messages.")
            page = messages_service.list_messages(_tenant(), limit=PAGE_SIZE, **filters)
        else:
            form.form_errors.append(exc.message)
            page = messages_service.MessagePage(items=[], next_cursor=None)
        cursor = None
    settled = not (form.errors or form.form_errors)
    now = utcnow()
    # Only the newest page gets new rows, and only while the chosen dates can still include them.
    live = settled and cursor is None and (filters.get("until") is None or filters["until"] > now)
    # url_for reads _method, _external, _anchor and _scheme itself: never pass those through from the query.
    query = {k: v for k, v in request.args.items() if not k.startswith("_")}
    args = {k: v for k, v in query.items() if k not in ("cursor", "fresh")}
    fresh = _fresh_arg()
    if fresh is not None and is_htmx() and live:
        return _log_fresh(filters, fresh, sessions, args)
    boundary = fresh_since(page.items, now)
    fresh_items = [m for m in page.items if m.created_at >= boundary] if live else []
    context = {
        "form": form,
        "page": page,
        "cursor": cursor,
        "sessions_by_id": {s.id: s for s in sessions},
        "filtered": any(v for v in filters.values()),
        # Polling the whole log: an empty newest page waits for its first row; an older page refreshes its
        # ticks while one may still change and then stops (286).
        "polling": settled and ((live and not page.items) or (cursor is not None and in_flight(page.items))),
        "poll_url": url_for("messages.index", **query),
        "poll_seconds": POLL_SECONDS,
        "live": live and bool(page.items),
        "fresh_items": fresh_items,
        "settled_items": page.items[len(fresh_items) :],
        "fresh_url": url_for("messages.index", **args, fresh=boundary.isoformat()),
        "older_url": (url_for("messages.index", **{**args, "cursor": page.next_cursor}) if page.next_cursor else None),
        "newest_url": url_for("messages.index", **args),
    }
    if is_htmx():
        if not settled:
            # The filter form itself needs to show what is wrong: load the whole page.
            return redirect_to(url_for("messages.index", **query))
        status = 200 if context["polling"] or context["live"] else STOP_POLLING
        return render_template("messages/_log.html", **context), status
    return render_template("messages/index.html", **context)


def _log_fresh(filters: dict[str, Any], boundary: datetime, sessions: list[Any], args: dict[str, str]):  # type: ignore[no-untyped-def]
    """The log's self-refreshing block: every row (with the log's filters) created since `boundary`."""
    since = max(boundary, filters["since"]) if filters.get("since") else boundary
    found = messages_service.list_messages(_tenant(), **{**filters, "since": since}, limit=FRESH_LIMIT)
    return render_template(
        "messages/_log_fresh.html",
        fresh_items=found.items,
        overflow=found.next_cursor is not None,
        sessions_by_id={s.id: s for s in sessions},
        poll_seconds=POLL_SECONDS,
        fresh_url=url_for("messages.index", **args, fresh=boundary.isoformat()),
        newest_url=url_for("messages.index", **args),
    )


# ---- send --------------------------------------------------------------------------------------------------


def _media_from(form: SendMessageForm, caption: str | None) -> dict[str, Any] | None:
    upload = form.media_file.data
    if upload and getattr(upload, "filename", ""):
        size = uploads.file_size(upload)
        if size > uploads.media_limit():
            message = uploads.too_large_message(size)
            raise Invalid(
                message, code="media_too_large", details={"fields": [{"field": "media_file", "message": message}]}
            )
        raw = upload.read()
        if not raw:
            raise Invalid.field("media_file", "That file is empty.")
        filename = secure_filename(upload.filename) or "file"
        mimetype = (
            upload.mimetype
            if upload.mimetype not in (None, "", "application/octet-stream")
            else (mimetypes.guess_type(filename)[0] or "application/octet-stream")
        )
        media: dict[str, Any] = {
            "data": base64.b64encode(raw).decode("ascii"),
            "mimetype": mimetype,
            "filename": filename,
        }
    elif form.media_url.data:
        url = form.media_url.data.strip()
        filename = secure_filename(urlparse(url).path.rsplit("/", 1)[-1]) or "file"
        mimetype = mimetypes.guess_type(filename)[0]
        media = {"url": url, "filename": filename}
        if mimetype:
            media["mimetype"] = mimetype
    else:
        return None
    media["kind"] = form.media_kind.data or media_kind(media.get("mimetype"))
    if caption:
        media["caption"] = caption
    return media


def _friendly(exc: ServiceError, sessions_by_id: dict[str, Any], session_id: str | None) -> ServiceError:
    """The refusals people meet most, reworded to say what to do next."""
    session = sessions_by_id.get(session_id or "")
    name = f"“{session.name}”" if session is not None else "This session"
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
        "code:session_not_ready": "session_id",
        "code:session_not_found": "session_id",
        "code:media_too_large": file_field,
    }


@bp.route("/send", methods=["GET", "POST"])
@login_required
@require("messages:send")
def send():  # type: ignore[no-untyped-def]
    sessions = _sessions()
    sessions_by_id = {s.id: s for s in sessions}
    form = SendMessageForm()
    form.session_id.choices = choices([(s.id, f"{s.name} ({s.status.replace('_', ' ').lower()})") for s in sessions])
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
            form.session_id.errors = ["Choose one of your sessions."]
        else:
            text = (form.text.data or "").strip() or None
            try:
                media = _media_from(form, caption=text)

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
                        "This message was not sent: an earlier attempt failed. Press Send to try again."
                    )
                    form.idempotency_key.data = new_key()
                else:
                    flash("Message sent. The ticks show when it is delivered and read.", "success")
                    target = safe_next(form.next.data) or url_for(
                        "messages.conversation", session_id=message.session_id, chat_id=message.chat_id
                    )
                    return redirect_to(target)
    uploads.limit_file_field(form)
    context = {"form": form, "sessions": sessions, "reply": request.form.get("reply") == "1"}
    if is_htmx():
        return render_template("messages/_send_form.html", **context), status
    return render_template("messages/send.html", **context), status


# ---- conversations -----------------------------------------------------------------------------------------


@bp.route("/chats/<session_id>")
@login_required
@require("messages:read")
def chats(session_id: str):  # type: ignore[no-untyped-def]
    session = sessions_service.get_session(_tenant(), session_id)
    return render_template(
        "messages/chats.html", session=session, chats=messages_service.list_chats(_tenant(), session.id)
    )


@bp.route("/chats/<session_id>/<chat_id>")
@login_required
@require("messages:read")
def conversation(session_id: str, chat_id: str):  # type: ignore[no-untyped-def]
    session = sessions_service.get_session(_tenant(), session_id)
    here = url_for("messages.conversation", session_id=session.id, chat_id=chat_id)
    cursor = request.args.get("cursor") or None
    fresh = _fresh_arg()
    if fresh is not None and cursor is None and is_htmx():
        found = messages_service.list_messages(
            _tenant(), session_id=session.id, chat_id=chat_id, since=fresh, limit=FRESH_LIMIT
        )
        return render_template(
            "messages/_thread_fresh.html",
            fresh_items=list(reversed(found.items)),
            overflow=found.next_cursor is not None,
            poll_seconds=POLL_SECONDS,
            empty_note=request.args.get("empty") == "1",
            newest_url=here,
            fresh_url=url_for(
                "messages.conversation",
                session_id=session.id,
                chat_id=chat_id,
                fresh=fresh.isoformat(),
                **({"empty": "1"} if request.args.get("empty") == "1" else {}),
            ),
        )
    try:
        page = messages_service.list_messages(
            _tenant(), session_id=session.id, chat_id=chat_id, cursor=cursor, limit=PAGE_SIZE
        )
    except Invalid:
        cursor = None
        page = messages_service.list_messages(_tenant(), session_id=session.id, chat_id=chat_id, limit=PAGE_SIZE)
    thread = list(reversed(page.items))
    boundary = fresh_since(page.items)
    # The newest page always refreshes its fresh block; an older page refreshes while a tick may change.
    fresh_items = [m for m in thread if m.created_at >= boundary] if cursor is None else []
    context = {
        "session": session,
        "chat_id": chat_id,
        "cursor": cursor,
        "live": cursor is None,
        "thread": thread[: len(thread) - len(fresh_items)],
        "fresh_items": fresh_items,
        "empty_note": not thread,
        "earlier_url": url_for("messages.conversation", session_id=session.id, chat_id=chat_id, cursor=page.next_cursor)
        if page.next_cursor
        else None,
        "newest_url": here,
        "polling": cursor is not None and in_flight(page.items),
        "poll_seconds": POLL_SECONDS,
        "poll_url": url_for(
            "messages.conversation", session_id=session.id, chat_id=chat_id, **({"cursor": cursor} if cursor else {})
        ),
        "fresh_url": url_for(
            "messages.conversation",
            session_id=session.id,
            chat_id=chat_id,
            fresh=boundary.isoformat(),
            **({"empty": "1"} if not thread else {}),
        ),
    }
    if is_htmx():
        status = 200 if context["polling"] or context["live"] else STOP_POLLING
        return render_template("messages/_thread.html", **context), status
    form = None
    if principal().can("messages:send"):
        form = SendMessageForm(
            formdata=None,
            session_id=session.id,
            to=chat_id,
            next=here,
            idempotency_key=form_key(request.args.get("form_key")),
        )
        uploads.limit_file_field(form)
    return render_template("messages/conversation.html", form=form, **context)


# ---- media -------------------------------------------------------------------------------------------------


@bp.route("/<int(big=True):message_id>/media")
@login_required
@require("messages:read")
def media(message_id: int):  # type: ignore[no-untyped-def]
    message = messages_service.get_message(_tenant(), message_id)  # another tenant's id is a 404 here
    content, mimetype, filename = media_service.media_for_message(_tenant(), message.id)
    # the service serves only allow-listed types (others as application/octet-stream); these may show inline
    inline = media_service.served_type(mimetype).inline and request.args.get("download") != "1"
    response = send_file(
        content,
        mimetype=mimetype,
        as_attachment=not inline,
        download_name=secure_filename(filename or "") or f"message-{message.id}",
    )
    # Tenant files: the browser may keep them a while, shared caches never.
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Content-Security-Policy"] = MEDIA_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
