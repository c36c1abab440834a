"""The WAHA endpoints of chats, contacts and actions on sent messages: the base of ``WahaClient``.

Read receipts (``chats/{chatId}/messages/read``), reactions, edits, deletes for everyone, forwards, typing
presence, contacts, profile pictures, LID lookups and the chats overview. Each method follows the client's
rules (``portal.waha.client``): reported to the observer, one deadline, typed errors, and retries only where
repeating the call cannot do anything twice (``retry_safe``): reads, and calls that set a state (a reaction, an
edit to the same text, a delete, typing on). A forward makes a new message, so like the media sends it is
retried only when it provably never left this machine.
"""

from __future__ import annotations

from typing import Any

from portal.waha.calls import SendResult, _observed, _segment
from portal.waha.ids import new_message_id as fresh_message_id
from portal.waha.ids import normalize_message_id, to_chat_id
from portal.waha.transport import UNSENT_ONLY, WahaTransport


def _list_of_objects(body: Any) -> list[dict]:
    return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []


class ChatsMixin(WahaTransport):
    """Chat, contact and message-action endpoints of one WAHA server (``WahaClient`` inherits them)."""

    # ------------------------------------------------------------------ message actions

    @_observed
    def read_chat(self, session: str, chat_id: str) -> None:
        """Mark the chat's unread messages read on WhatsApp: the customer's phone shows blue ticks."""
        path = f"/api/{_segment(session)}/chats/{_segment(to_chat_id(chat_id))}/messages/read"
        self._request("POST", path, retry_safe=True)

    @_observed
    def react(self, session: str, message_id: str, emoji: str) -> None:
        """Set this account's reaction to a message (``message_id`` as WAHA serializes it); "" removes it."""
        body = {"session": session, "messageId": message_id, "reaction": emoji}
        self._request("PUT", "/api/reaction", body=body, retry_safe=True)

    @_observed
    def edit_message(self, session: str, chat_id: str, message_id: str, text: str) -> None:
        """Replace the text of a message this account sent (WhatsApp shows it as edited)."""
        self._request("PUT", self._message_path(session, chat_id, message_id), body={"text": text}, retry_safe=True)

    @_observed
    def delete_message(self, session: str, chat_id: str, message_id: str) -> None:
        """Delete a message this account sent, for everyone in the chat."""
        self._request("DELETE", self._message_path(session, chat_id, message_id), retry_safe=True)

    @_observed
    def forward_message(
        self, session: str, chat_id: str, message_id: str, *, new_message_id: str | None = None
    ) -> SendResult:
        """Forward a message the session has to another chat; ``new_message_id`` (generated when missing) is
        the id the forwarded copy is sent under, so its acks can be matched before WAHA answers."""
        chat = to_chat_id(chat_id)
        new_id = new_message_id or fresh_message_id()
        body = {"session": session, "chatId": chat, "messageId": message_id, "id": new_id}
        raw = self._json(self._request("POST", "/api/forwardMessage", body=body, retry_safe=UNSENT_ONLY))
        if not isinstance(raw, dict):
            raw = {} if raw is None else {"value": raw}
        return SendResult(message_id=normalize_message_id(raw) or f"true_{chat}_{new_id}", raw=raw)

    @_observed
    def delete_chat(self, session: str, chat_id: str) -> None:
        """Delete the chat and its messages from the account (``DELETE /api/{session}/chats/{chatId}``): the
        phone no longer shows it. Already gone is WahaNotFound, which callers erasing a contact treat as done."""
        path = f"/api/{_segment(session)}/chats/{_segment(to_chat_id(chat_id))}"
        self._request("DELETE", path, retry_safe=True)

    @_observed
    def start_typing(self, session: str, chat_id: str) -> None:
        """Show "typing..." to the chat (WhatsApp drops it after a while, or when a message is sent)."""
        self._request("POST", "/api/startTyping", body=self._chat_body(session, chat_id), retry_safe=True)

    @_observed
    def stop_typing(self, session: str, chat_id: str) -> None:
        """Stop showing "typing..." to the chat."""
        self._request("POST", "/api/stopTyping", body=self._chat_body(session, chat_id), retry_safe=True)

    # ------------------------------------------------------------------ contacts

    @_observed
    def list_contacts(self, session: str, *, limit: int = 100, offset: int = 0) -> list[dict]:
        """One page of the account's contacts (``id``, ``name`` saved on the phone, ``pushname`` they chose...)."""
        params = {"session": session, "limit": limit, "offset": offset}
        return _list_of_objects(self._json(self._request("GET", "/api/contacts/all", params=params, retry_safe=True)))

    @_observed
    def get_contact(self, session: str, contact_id: str) -> dict | None:
        """One contact's basic info (WAHA answers even for numbers not on WhatsApp), or None for an empty answer."""
        params = {"contactId": to_chat_id(contact_id), "session": session}
        body = self._json(self._request("GET", "/api/contacts", params=params, retry_safe=True))
        return body if isinstance(body, dict) and body else None

    @_observed
    def get_profile_picture_url(self, session: str, contact_id: str) -> str | None:
        """The URL of the contact's profile picture, or None when they have none or hide it from us."""
        params = {"contactId": to_chat_id(contact_id), "session": session}
        body = self._json(self._request("GET", "/api/contacts/profile-picture", params=params, retry_safe=True))
        if not isinstance(body, dict):
            return None
        url = body.get("profilePictureURL", body.get("url"))
        return url if isinstance(url, str) and url else None

    @_observed
    def get_lid_phone(self, session: str, lid: str) -> str | None:
        """The phone chat id ("4917...@c.us") behind a linked id ("1234...@lid"), or None when WAHA does not know it."""
        value = lid if "@" in lid else f"{lid}@lid"
        body = self._json(self._request("GET", f"/api/{_segment(session)}/lids/{_segment(value)}", retry_safe=True))
        pn = body.get("pn") if isinstance(body, dict) else None
        return pn if isinstance(pn, str) and pn else None

    # ------------------------------------------------------------------ chats

    @_observed
    def list_chats_overview(self, session: str, *, limit: int = 100, offset: int = 0) -> list[dict]:
        """One page of the session's chats, newest activity first: ``{id, name, picture, lastMessage, _chat}``."""
        path = f"/api/{_segment(session)}/chats/overview"
        params = {"limit": limit, "offset": offset}
        return _list_of_objects(self._json(self._request("GET", path, params=params, retry_safe=True)))

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _message_path(session: str, chat_id: str, message_id: str) -> str:
        chat = _segment(to_chat_id(chat_id))
        return f"/api/{_segment(session)}/chats/{chat}/messages/{_segment(message_id)}"

    @staticmethod
    def _chat_body(session: str, chat_id: str) -> dict[str, str]:
        return {"session": session, "chatId": to_chat_id(chat_id)}
