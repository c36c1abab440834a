"""The inbox's thread pane: one chat's messages (newest page, older pages on scroll, live changes), the composer
(send, typing) and the chat's avatar. The message actions are in `inbox_actions`.

The pane is `templates/inbox/_thread.html`, rendered from `thread_context` both by the inbox page (`inbox.index`
with `chat=<id>`) and, for htmx, by `show`. Its scripts (static/js/thread.js) ask the fragments here with
fetch; errors come back with their HTTP status and the service's message as plain text, so the pane can show
them next to what caused them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from werkzeug.exceptions import RequestEntityTooLarge

from portal import pagination
from portal.extensions import htmx
from portal.i18n import N_, in_zone
from portal.i18n import gettext as _
from portal.services import avatars, outreach
from portal.services import messages as messages_service
from portal.services.errors import Invalid, ServiceError
from portal.services.inbox import chats as chats_service
from portal.services.inbox import thread as thread_service
from portal.storage.serving import send_stored
from portal.tenancy import require
from portal.web import uploads
from portal.web.helpers import principal, redirect_to
from portal.web.inbox_parts import chat_of, refusal, render_messages, since_cursor, thread_context
from portal.web.send_form import form_key, new_key

bp = Blueprint("inbox_thread", __name__, url_prefix="/inbox/chats")
bp.url_value_preprocessor(uploads.allow_large_send_body)

# ---- the pane --------------------------------------------------------------------------------------------------


@bp.route("/<int(big=True):chat_id>")
@login_required
@require("messages:read")
def show(chat_id: int) -> ResponseReturnValue:
    """The thread pane for htmx; a browser opening the URL gets the inbox page with this chat open."""
    if not htmx:
        chat_of(chat_id)  # another tenant's chat is a 404 here too
        return redirect_to(url_for("inbox.index", chat=chat_id))
    return render_template("inbox/_thread.html", thread=thread_context(principal().tenant, chat_id))


@bp.route("/<int(big=True):chat_id>/older")
@login_required
@require("messages:read")
def older(chat_id: int) -> ResponseReturnValue:
    """The page of messages before the cursor `before` (scrolling up), with the cursor of the page before it."""
    item = chat_of(chat_id)
    try:
        page = thread_service.thread_page(principal().tenant, item.chat, before=request.args.get("before") or None)
    except Invalid as exc:
        return refusal(exc)
    response = Response(render_messages(item, page.messages, page.quoted))
    response.headers["X-Older"] = page.older or ""
    response.headers["X-Oldest"] = page.oldest or ""
    return response


@bp.route("/<int(big=True):chat_id>/fresh")
@login_required
@require("messages:read")
def fresh(chat_id: int) -> ResponseReturnValue:
    """Messages of the chat new or changed since `after` (polled every 2 s while the pane is visible), from the
    oldest shown (`from`) on. With `seen=1` from someone who may answer, new unread messages are marked read."""
    tenant = principal().tenant
    item = chat_of(chat_id)
    try:
        since, _unused = pagination.decode_time_id(request.args.get("after") or "")
        changes = thread_service.thread_changes(tenant, item.chat, since=since, oldest=request.args.get("from"))
    except Invalid as exc:
        return refusal(exc)
    who = principal()
    if request.args.get("seen") == "1" and item.chat.unread_count and who.can("messages:send"):
        chats_service.mark_read(tenant, item.chat.session_id, item.chat.chat_id, who.actor())
    response = Response(render_messages(item, changes.messages, changes.quoted))
    response.headers["X-After"] = since_cursor(changes.next_since)
    response.headers["Cache-Control"] = "no-store"
    if changes.overflow:
        response.headers["X-Overflow"] = "1"
    return response


@bp.route("/<int(big=True):chat_id>/avatar")
@login_required
@require("messages:read")
def avatar(chat_id: int) -> ResponseReturnValue:
    """The chat's contact picture as the portal stored it."""
    tenant = principal().tenant
    item = chat_of(chat_id)
    contact_id = item.contact.id if item.contact is not None else None
    stored = avatars.avatar_file(tenant, contact_id)
    response = send_stored(
        stored, as_attachment=False, missing=avatars.avatar_gone(), cache_control="private, max-age=3600"
    )
    return response


# ---- the composer ----------------------------------------------------------------------------------------------


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> ResponseReturnValue:
    uploads.drain_body()
    return Response(uploads.too_large_message(request.content_length), status=413, mimetype="text/plain")


@bp.route("/<int(big=True):chat_id>/send", methods=["POST"])
@login_required
@require("messages:send")
def send(chat_id: int) -> ResponseReturnValue:
    """Send what the composer holds (text, a file with the text as its caption, a quoted message); answers the
    new message's <li>. The Idempotency-Key is the composer's: pressing Send twice sends once."""
    tenant = principal().tenant
    item = chat_of(chat_id)
    text = (request.form.get("text") or "").strip() or None
    key = form_key(request.form.get("idempotency_key"))
    upload = request.files.get("media_file")
    try:
        media = uploads.upload_media(upload, caption=text) if upload and upload.filename else None
        if media is None and text is None:
            raise Invalid.field("text", N_("Type a message or attach a file."))
        send_at = outreach.tenant_time(tenant.id, request.form.get("send_at") or None, field="sendAt")
        if send_at is not None:
            return _schedule(item, text, media, send_at, key)

        def attempt(key: str) -> Any:
            return messages_service.send_message(
                tenant,
                item.chat.session_id,
                principal().actor(),
                to=item.chat.chat_id,
                text=None if media else text,
                media=media,
                reply_to=request.form.get("reply_to") or None,
                idempotency_key=key,
                source="portal",
            )

        try:
            message = attempt(key)
        except ServiceError as exc:
            if exc.code != "idempotency_key_reused":
                raise
            message = attempt(new_key())  # the composer's content changed after a refusal: a new message
    except ServiceError as exc:
        return refusal(exc)
    if message.status == "ERROR":
        response = Response(
            _("This message was not sent: an earlier attempt failed. Press Send to try again."),
            status=409,
            mimetype="text/plain",
        )
        response.headers["X-New-Key"] = "1"
        return response
    quoted = thread_service.quoted_messages([message])
    return Response(render_messages(item, [message], quoted), status=201)


def _schedule(item: Any, text: str | None, media: dict[str, Any] | None, send_at: Any, key: str) -> Response:
    """The composer's "Send later": the message queued for its time; answers 202 with a sentence to show."""
    tenant = principal().tenant
    scheduled = outreach.schedule_message(
        tenant,
        item.chat.session_id,
        principal().actor(),
        to=item.chat.chat_id,
        send_at=send_at,
        text=None if media else text,
        media=media,
        reply_to=request.form.get("reply_to") or None,
        idempotency_key=key,
    )
    zone = outreach.outreach_settings(tenant.id).zone
    when = in_zone(scheduled.not_before, zone) if scheduled.not_before else ""
    return Response(
        _("Scheduled for %(when)s. See Scheduled messages to change or cancel it.", when=when),
        202,
        mimetype="text/plain",
    )


@bp.route("/<int(big=True):chat_id>/typing", methods=["POST"])
@login_required
@require("messages:send")
def typing(chat_id: int) -> ResponseReturnValue:
    """Show "typing..." in the chat (best effort, at most once per 5 s and chat: services.messages)."""
    item = chat_of(chat_id)
    messages_service.send_typing(principal().tenant, principal().actor(), item.chat.session_id, item.chat.chat_id)
    return Response(status=204)
