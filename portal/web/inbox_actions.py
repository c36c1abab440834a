"""Actions on one message of the inbox's thread pane: react, edit, delete for everyone, forward.

Each is a POST (CSRF-checked) answering the message's updated <li>, or the service's refusal with its status
(409 when WhatsApp's window has passed, 503 when WAHA is down, ...) as plain text. The rules and the audit are
the services' (services.messages.actions); a message of another chat, or another tenant's, is a 404.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from portal.converters import parse_id
from portal.i18n import N_
from portal.i18n import gettext as _
from portal.models import Message
from portal.services import messages as messages_service
from portal.services.errors import Invalid, ServiceError
from portal.services.inbox import chats as chats_service
from portal.services.inbox import thread as thread_service
from portal.tenancy import require
from portal.web.helpers import principal
from portal.web.inbox_parts import chat_of, refusal, render_messages
from portal.web.send_form import form_key

bp = Blueprint("inbox_actions", __name__, url_prefix="/inbox/chats")

MESSAGE = "/<int(big=True):chat_id>/messages/<int(big=True):message_id>"


def _answer(item: chats_service.ChatItem, message: Message, notice: str | None = None) -> Response:
    response = Response(render_messages(item, [message], thread_service.quoted_messages([message])))
    if notice:
        response.headers["X-Notice"] = quote(notice)  # headers are Latin-1: the pane decodes it
    return response


def _message(chat_id: int, message_id: int) -> tuple[chats_service.ChatItem, Message]:
    item = chat_of(chat_id)
    return item, thread_service.message_in_chat(principal().tenant, item.chat, message_id)


@bp.route(f"{MESSAGE}/react", methods=["POST"])
@login_required
@require("messages:send")
def react(chat_id: int, message_id: int) -> ResponseReturnValue:
    """Set this account's reaction ("" removes it)."""
    item, message = _message(chat_id, message_id)
    try:
        message = messages_service.react(
            principal().tenant, principal().actor(), message.id, request.form.get("emoji", "")
        )
    except ServiceError as exc:
        return refusal(exc)
    return _answer(item, message)


@bp.route(f"{MESSAGE}/edit", methods=["POST"])
@login_required
@require("messages:send")
def edit(chat_id: int, message_id: int) -> ResponseReturnValue:
    """Replace the text of one of this account's text messages, within WhatsApp's edit window."""
    item, message = _message(chat_id, message_id)
    try:
        message = messages_service.edit_message(
            principal().tenant, principal().actor(), message.id, (request.form.get("text") or "").strip()
        )
    except ServiceError as exc:
        return refusal(exc)
    return _answer(item, message)


@bp.route(f"{MESSAGE}/delete", methods=["POST"])
@login_required
@require("messages:send")
def delete(chat_id: int, message_id: int) -> ResponseReturnValue:
    """Delete one of this account's messages for everyone in the chat."""
    item, message = _message(chat_id, message_id)
    try:
        message = messages_service.delete_message(principal().tenant, principal().actor(), message.id)
    except ServiceError as exc:
        return refusal(exc)
    return _answer(item, message)


@bp.route(f"{MESSAGE}/forward", methods=["GET"])
@login_required
@require("messages:send")
def forward_picker(chat_id: int, message_id: int) -> ResponseReturnValue:
    """The chats the message can be forwarded to (those of the same session), as a small form."""
    item, message = _message(chat_id, message_id)
    return render_template(
        "inbox/_forward.html",
        message=message,
        targets=thread_service.forward_targets(principal().tenant, item.chat),
        action=url_for("inbox_actions.forward", chat_id=item.chat.id, message_id=message.id),
        key=form_key(None),
    )


@bp.route(f"{MESSAGE}/forward", methods=["POST"])
@login_required
@require("messages:send")
def forward(chat_id: int, message_id: int) -> ResponseReturnValue:
    """Forward the message to another chat of the tenant (`target`, a chat id of the list); answers the
    original's <li> and says where it went."""
    tenant = principal().tenant
    item, message = _message(chat_id, message_id)
    try:
        target_id = parse_id(request.form.get("target"), big=True)
        target = chat_of(target_id) if target_id is not None else None
        if target is None or target.chat.session_id != item.chat.session_id:
            raise Invalid.field("target", N_("Choose a chat of the same session to forward the message to."))
        messages_service.forward_message(
            tenant,
            principal().actor(),
            message.id,
            session_id=item.chat.session_id,
            to=target.chat.chat_id,
            idempotency_key=form_key(request.form.get("idempotency_key")),
            source="portal",
        )
    except ServiceError as exc:
        return refusal(exc)
    return _answer(item, message, notice=_("Forwarded to %(name)s.", name=target.name))
