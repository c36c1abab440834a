"""Which messages WhatsApp can act on, and the message a reply quotes.

Shared by the send path (`sending.send_message` stores the quoted message as `reply_to_id` and sends WAHA its
WhatsApp id) and the actions on messages (`actions`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.i18n import N_
from portal.models import Message, Tenant, get_for_tenant
from portal.services.errors import Conflict, Invalid


def on_whatsapp(message: Message) -> None:
    """Conflict unless the message is one WhatsApp has and still shows: "message_deleted" (deleted for
    everyone) or "message_not_sent" (it never reached WhatsApp)."""
    if message.revoked_at is not None:
        raise Conflict(N_("The message was deleted for everyone."), code="message_deleted")
    if not message.waha_message_id or message.status == "ERROR":
        raise Conflict(N_("The message never reached WhatsApp."), code="message_not_sent")


def reply_target(tenant: Tenant, session_id: str, chat_id: str, reply_to: Any) -> Message:
    """The message a send quotes: given by its portal id (or its WhatsApp id), of the same session and chat.

    Invalid(field "reply_to") for anything else, another tenant's message included; Conflict when WhatsApp
    cannot quote it (deleted, never sent).
    """
    message = None
    by_id = (isinstance(reply_to, int) and not isinstance(reply_to, bool)) or (
        isinstance(reply_to, str) and reply_to.isascii() and reply_to.isdecimal()
    )
    if by_id:
        message = get_for_tenant(db.session, Message, tenant.id, reply_to)
    elif isinstance(reply_to, str) and reply_to.strip() and len(reply_to) <= 255:
        message = db.session.scalar(
            select(Message).where(
                Message.tenant_id == tenant.id,
                Message.session_id == session_id,
                Message.waha_message_id == reply_to.strip(),
            )
        )
    if message is None or (message.session_id, message.chat_id) != (session_id, chat_id):
        raise Invalid.field("reply_to", N_("Reply to a message of this chat: give its id."))
    on_whatsapp(message)
    return message
