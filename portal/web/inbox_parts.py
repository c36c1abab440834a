"""What the inbox's thread pane (`inbox_thread`) and the actions on its messages (`inbox_actions`) share: the chat
of the URL, a message list rendered as the pane shows it, and a service's refusal as the pane's scripts read it."""

from __future__ import annotations

from typing import Any

from flask import Response, render_template

from portal.models import utcnow
from portal.services.errors import ServiceError
from portal.services.inbox import chats as chats_service
from portal.services.inbox import thread as thread_service
from portal.tenancy import current_principal
from portal.web.helpers import principal
from portal.web.wording import WORDS, say_exc

# The quick reactions of the message menu.
REACTIONS = ("👍", "❤️", "😂", "😮", "😢", "🙏")


def refusal(exc: ServiceError) -> Response:
    """A service's refusal for the pane's scripts: its status and its message in words, as plain text."""
    message = say_exc(exc) if exc.code in WORDS else exc.message
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
