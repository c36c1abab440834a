"""What the inbox page (`inbox`), its thread pane (`inbox_thread`) and the actions on its messages (`inbox_actions`)
share: the pane's context (`thread_context`), the chat of the URL, a message list rendered as the pane shows it,
and a service's refusal as the pane's scripts read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, render_template, url_for

from portal import pagination
from portal.i18n import translated
from portal.models import Chat, Tenant, utcnow
from portal.services import avatars, contacts
from portal.services.errors import ServiceError
from portal.services.inbox import chats as chats_service
from portal.services.inbox import thread as thread_service
from portal.services.sessions import get_session
from portal.tenancy import current_principal
from portal.web import uploads
from portal.web.helpers import principal
from portal.web.send_form import new_key
from portal.web.wording import WORDS, say_exc

# The quick reactions of the message menu.
REACTIONS = ("👍", "❤️", "😂", "😮", "😢", "🙏")


def refusal(exc: ServiceError) -> Response:
    """A service's refusal for the pane's scripts: its status and its message in words, as plain text."""
    message = say_exc(exc) if exc.code in WORDS else translated(exc.message)
    response = Response(message, status=exc.status, mimetype="text/plain")
    response.headers["X-Error-Code"] = exc.code
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def chat_of(chat_id: int) -> chats_service.ChatItem:
    """The tenant's chat of the URL (another tenant's is a 404)."""
    return chats_service.get_chat_by_id(principal().tenant, chat_id)


def render_messages(item: chats_service.ChatItem, messages: list[Any], quoted: dict[int, Any]) -> str:
    """The <li>s of messages (with their day separators) as the thread shows them."""
    who = current_principal()
    return render_template(
        "inbox/_messages.html",
        messages=messages,
        quoted=quoted,
        name=item.name,
        chat=item.chat,
        can_send=who is not None and who.can("messages:send"),
        allowed=thread_service.allowed_actions,
        reactions=REACTIONS,
        now=utcnow(),
    )


# The composer's emoji.
EMOJI = ("😀", "😂", "😊", "😍", "🤔", "😢", "😮", "😡", "👍", "👎", "🙏", "👏", "🎉", "❤️", "🔥", "✅", "👀", "💯")


def since_cursor(value: datetime) -> str:
    return pagination.encode_time_id(value, 0)


def _urls(chat: Chat) -> dict[str, str]:
    def url(endpoint: str) -> str:
        return url_for(f"inbox_thread.{endpoint}", chat_id=chat.id)

    return {
        "fresh": url("fresh"),
        "older": url("older"),
        "send": url("send"),
        "typing": url("typing"),
        "back": url_for("inbox.index"),
        "quick": url_for("inbox.quick_replies"),
    }


def thread_context(tenant: Tenant, chat_row_id: Any) -> dict[str, Any]:
    """Everything `inbox/_thread.html` shows for one of the tenant's chats (NotFound for another's): the chat,
    its name, number, avatar and session, the newest page of messages with the cursors for older pages and for
    live changes, and what the signed-in person may do. Opening a chat with unread messages marks it read
    (and tells WhatsApp, unless the tenant turned read receipts off) for those who may answer it."""
    who = current_principal()
    can_send = who is not None and who.can("messages:send")
    item = chats_service.get_chat_by_id(tenant, chat_row_id)
    if can_send and who is not None and item.chat.unread_count:
        item = chats_service.mark_read(tenant, item.chat.session_id, item.chat.chat_id, who.actor())
    started = utcnow()
    page = thread_service.thread_page(tenant, item.chat)
    chat = item.chat
    return {
        "chat": chat,
        "item": item,
        "name": item.name,
        "number": contacts.format_number(chat.chat_id),
        "avatar_url": url_for("inbox_thread.avatar", chat_id=chat.id) if avatars.avatar_url(item.contact) else None,
        "session": get_session(tenant, chat.session_id),
        "messages_html": render_messages(item, page.messages, page.quoted),
        "empty": not page.messages,
        "older": page.older,
        "oldest": page.oldest,
        "after": since_cursor(started - thread_service.CHANGES_OVERLAP),
        "can_send": can_send,
        "compose_key": new_key(),
        "emoji": EMOJI,
        "max_bytes": uploads.media_limit(),
        "too_large": uploads.too_large_message(),
        "urls": _urls(chat),
    }
