"""Chats, contacts and actions on messages: what the inbox needs of WAHA, and the phone on the other side.

The WAHA side (CONTRACT 7, 8.5; openapi.json): read receipts (`POST /api/{s}/chats/{chatId}/messages/read`),
reactions (`PUT /api/reaction`), edits and deletes for everyone (`PUT`/`DELETE .../messages/{id}`),
`POST /api/forwardMessage`, typing (`startTyping`/`stopTyping`), contacts, profile pictures, LIDs and the chats
overview. The simulator keeps per session its contacts (saved name, push name, profile picture served by the
simulator itself, LID) and answers from the messages it sent and received.

The customer's side (control hooks, not WAHA API): the customer reacts, edits or revokes one of their messages,
reads ours (a READ ack), types, or changes their contact data. Each emits the event WAHA would.

`ChatsMixin` is part of `Simulator`; every public method takes the simulator's lock.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import TYPE_CHECKING, Any

from . import errors, shapes
from .errors import ControlError
from .ids import uniqid, wa_message_id
from .images import screen_png

READ_DAYS_DEFAULT = 7
_UNSET = object()


class ChatsMixin:
    """The chats, contacts and message-action endpoints and control hooks of `Simulator`."""

    if TYPE_CHECKING:  # provided by Simulator
        from .settings import Settings

        lock: threading.RLock
        settings: Settings
        sessions: dict[str, Any]
        pictures: dict[str, bytes]

        @property
        def engine(self) -> str: ...

        def _working(self, name: Any, expected: tuple = ...) -> Any: ...

        def _with_wait(self, fn: Any) -> Any: ...

        def _control_session(self, name: str) -> Any: ...

        def _emit(self, s: Any, event: str, payload: dict) -> dict: ...

        def _emit_ack(self, s: Any, record: dict, ack: int) -> bool: ...

        def _send_locked(self, kind: str, body: dict) -> dict: ...

    # ------------------------------------------------------------------ lookups

    def _find_message(self, s, message_id: str) -> dict | None:
        """A sent or received message by its serialized id, or by its short WhatsApp id."""
        record = s.outbox.get(message_id) or s.inbox.get(message_id)
        if record is not None or message_id.count("_") >= 2:
            return record
        for store in (s.outbox, s.inbox):
            for candidate in store.values():
                if candidate["waId"] == message_id:
                    return candidate
        return None

    @staticmethod
    def _chat_of(message_id: str) -> str:
        """The chat named in a serialized message id (`<fromMe>_<chat>_<id>`); WAHA's parser fails otherwise."""
        parts = str(message_id).split("_")
        if len(parts) < 3 or parts[0] not in ("true", "false") or "@" not in parts[1]:
            raise ValueError(f"Invalid message id '{message_id}', it must be in format <fromMe>_<chatId>_<id>")
        return parts[1]

    def _own_id(self, s) -> str | None:
        return (s.auth or {}).get("id")

    def _contact(self, s, chat: str) -> dict:
        return s.contacts.setdefault(chat, {"name": None, "pushname": None, "picture": None, "lid": None})

    def _display_name(self, s, chat: str) -> str | None:
        info = s.contacts.get(chat) or {}
        return info.get("name") or info.get("pushname")

    # ------------------------------------------------------------------ actions (WAHA API)

    def read_chat(self, name, chat_id: str, messages: int | None = None, days: float | None = None) -> dict:
        """Mark the chat's unread incoming messages read (the sender's phone shows blue ticks); `{ids}` of those
        read now. WAHA reads the last `days` days (default 7) or the last `messages` messages."""

        def attempt():
            s = self._working(name)
            chat = shapes.normalize_chat(chat_id)
            since = time.time() - 86400 * (READ_DAYS_DEFAULT if days is None else days)
            unread = [
                r
                for r in reversed(s.inbox.values())
                if r["chatId"] == chat and not r.get("read") and r["timestamp"] >= since
            ]
            if messages is not None:
                unread = unread[: max(0, int(messages))]
            for record in unread:
                record["read"] = True
            ids = [r["id"] for r in unread]
            s.reads.append({"chatId": chat, "ids": ids, "at": int(time.time() * 1000)})
            del s.reads[: -self.settings.max_messages]
            return {"ids": ids}

        return self._with_wait(attempt)

    def react(self, body) -> dict | None:
        """PUT /api/reaction: set this account's reaction ("" removes it); emits `message.reaction` (fromMe)."""
        body = body if isinstance(body, dict) else {}

        def attempt():
            s = self._working(body.get("session"))
            message_id, text = body.get("messageId"), body.get("reaction")
            if not isinstance(message_id, str) or not message_id:
                raise ValueError("messageId is required")
            if not isinstance(text, str):
                raise ValueError("reaction must be a string")
            target = self._find_message(s, message_id)
            chat = target["chatId"] if target else self._chat_of(message_id)
            record = shapes.protocol_record(chat, wa_message_id(), from_me=True)
            if target is not None:
                self._set_reaction(target, "me", text)
            own = self._own_id(s)
            target_id = target["id"] if target else message_id
            self._emit(s, "message.reaction", shapes.reaction_payload(self.engine, record, own, text, target_id))
            data = {"reactionMessage": {"key": {"ID": target_id}, "text": text}}
            return shapes.action_response(self.engine, record, own, data)

        return self._with_wait(attempt)

    def edit_message(self, name, chat_id: str, message_id: str, body) -> dict | None:
        """PUT /api/{s}/chats/{chatId}/messages/{id}: new text for one of this account's messages; emits
        `message.edited`. WhatsApp applies an edit only to the sender's own message."""
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise errors.validation(["text must be a string"])
        text = body["text"]

        def attempt():
            s = self._working(name)
            chat = shapes.normalize_chat(chat_id)
            target = self._find_message(s, message_id)
            record = shapes.protocol_record(chat, wa_message_id(), from_me=True, body=text)
            own = self._own_id(s)
            if target is not None and target["id"].startswith("true_") and target["chatId"] == chat:
                target["body"], target["edited"] = text, True
                self._emit(s, "message.edited", shapes.edited_payload(self.engine, record, own, target))
            data = {"protocolMessage": {"type": "MESSAGE_EDIT", "editedMessage": {"conversation": text}}}
            return shapes.action_response(self.engine, record, own, data)

        return self._with_wait(attempt)

    def delete_message(self, name, chat_id: str, message_id: str) -> dict | None:
        """DELETE /api/{s}/chats/{chatId}/messages/{id}: delete one of this account's messages for everyone;
        emits `message.revoked`."""

        def attempt():
            s = self._working(name)
            chat = shapes.normalize_chat(chat_id)
            target = self._find_message(s, message_id)
            record = shapes.protocol_record(chat, wa_message_id(), from_me=True)
            own = self._own_id(s)
            if target is not None and target["id"].startswith("true_") and target["chatId"] == chat:
                self._revoke(s, target, record)
            return shapes.action_response(self.engine, record, own, {"protocolMessage": {"type": "REVOKE"}})

        return self._with_wait(attempt)

    def delete_chat(self, name, chat_id: str) -> dict:
        """DELETE /api/{s}/chats/{chatId}: the chat and its messages are gone from the account (recorded for
        tests); a chat the account never had answers 200 too, as WAHA does."""

        def attempt():
            s = self._working(name)
            chat = shapes.normalize_chat(chat_id)
            for store in (s.inbox, s.outbox):
                for key in [k for k, record in store.items() if record["chatId"] == chat]:
                    del store[key]
            s.deleted_chats.append({"chatId": chat, "at": time.time()})
            return {"result": True}

        return self._with_wait(attempt)

    def forward(self, body) -> dict:
        """POST /api/forwardMessage: send a copy of a message this session has to `chatId` (deduplicated on
        `id` like the sends); emits `message.any` and the acks of a send."""
        body = body if isinstance(body, dict) else {}

        def attempt():
            s = self._working(body.get("session"))
            message_id = body.get("messageId")
            if not isinstance(message_id, str) or not message_id:
                raise ValueError("messageId is required")
            original = self._find_message(s, message_id)
            if original is None or original.get("revoked"):
                raise errors.nest(404, "Message not found")
            copy_body = {"session": body.get("session"), "chatId": body.get("chatId"), "id": body.get("id")}
            if original["kind"] == "text":
                copy_body["text"] = original["body"]
            else:
                media = original.get("media") or {}
                copy_body["caption"] = original["body"]
                copy_body["file"] = {
                    "mimetype": media.get("mimetype") or (original.get("file") or {}).get("mimetype"),
                    "filename": media.get("filename"),
                    "url": media.get("url") or "",
                }
            return self._send_locked(original["kind"], copy_body)

        return self._with_wait(attempt)

    def typing(self, body, state: str = "typing") -> dict:
        """POST /api/startTyping | stopTyping: recorded for tests (our own presence is not echoed as an event)."""
        body = body if isinstance(body, dict) else {}

        def attempt():
            s = self._working(body.get("session"))
            if not isinstance(body.get("chatId"), str) or not body["chatId"]:
                raise ValueError("chatId is required")
            s.typing.append({"chatId": shapes.normalize_chat(body["chatId"]), "state": state, "at": time.time()})
            del s.typing[: -self.settings.max_messages]
            return {"result": True}

        return self._with_wait(attempt)

    # ------------------------------------------------------------------ contacts and chats (WAHA API)

    def _known_chats(self, s) -> list[str]:
        chats = dict.fromkeys(s.contacts)
        for store in (s.inbox, s.outbox):
            for record in store.values():
                chats.setdefault(record["chatId"])
        return [c for c in chats if not c.endswith(("@g.us", "@newsletter", "@broadcast"))]

    def list_contacts(self, name, limit=None, offset=None, sort_by=None, sort_order=None) -> list[dict]:
        def attempt():
            s = self._working(name)
            found = [shapes.contact(self.engine, c, s.contacts.get(c) or {}) for c in self._known_chats(s)]
            key = "name" if sort_by == "name" else "id"
            found.sort(key=lambda c: (c[key] is None, c[key] or ""), reverse=sort_order == "desc")
            start = int(offset or 0)
            return found[start : start + int(limit)] if limit is not None else found[start:]

        return self._with_wait(attempt)

    def get_contact(self, name, contact_id: str) -> dict:
        """GET /api/contacts: always an answer, even for a number that is not on WhatsApp."""

        def attempt():
            s = self._working(name)
            chat = shapes.normalize_chat(contact_id)
            return shapes.contact(self.engine, chat, s.contacts.get(chat) or {})

        return self._with_wait(attempt)

    def profile_picture(self, name, contact_id: str) -> dict:
        """GET /api/contacts/profile-picture: `{profilePictureURL}`, null when there is none (or privacy)."""

        def attempt():
            s = self._working(name)
            info = s.contacts.get(shapes.normalize_chat(contact_id)) or {}
            return {"profilePictureURL": info.get("picture")}

        return self._with_wait(attempt)

    def lid_phone(self, name, lid: str) -> dict:
        """GET /api/{s}/lids/{lid}: `{lid, pn}`, pn null when unknown; 422 for an id that is not a LID."""

        def attempt():
            s = self._working(name)
            value = lid if "@" in lid else f"{lid}@lid"
            if not value.endswith("@lid"):
                raise errors.nest(422, "Invalid LID - it must end with @lid")
            pn = next((chat for chat, info in s.contacts.items() if info.get("lid") == value), None)
            return {"lid": value, "pn": pn}

        return self._with_wait(attempt)

    def chats_overview(self, name, limit=20, offset=0, ids=None) -> list[dict]:
        """GET /api/{s}/chats/overview: `ChatSummary[]`, newest last message first."""

        def attempt():
            s = self._working(name)
            last: dict[str, dict] = {}
            for record in list(s.inbox.values()) + list(s.outbox.values()):
                current = last.get(record["chatId"])
                if current is None or (record["timestamp"], record["seq"]) > (current["timestamp"], current["seq"]):
                    last[record["chatId"]] = record
            rows = sorted(last.values(), key=lambda r: (r["timestamp"], r["seq"]), reverse=True)
            if ids:
                rows = [r for r in rows if r["chatId"] in set(ids)]
            own = self._own_id(s)
            out = []
            for record in rows[int(offset or 0) : int(offset or 0) + int(limit)]:
                chat, title = record["chatId"], self._display_name(s, record["chatId"])
                ack = max(record.get("ack", 0), 1) if record["id"].startswith("true_") else record.get("ack", 0)
                out.append(
                    {
                        "id": chat,
                        "name": title,
                        "picture": (s.contacts.get(chat) or {}).get("picture"),
                        "lastMessage": shapes.message_payload(self.engine, record, own, ack=ack),
                        "_chat": {"id": chat, "name": title, "conversationTimestamp": record["timestamp"]},
                    }
                )
            return out

        return self._with_wait(attempt)

    def get_picture(self, token: str) -> bytes:
        with self.lock:
            data = self.pictures.get(token)
        if data is None:
            raise ControlError(404, "no such picture")
        return data

    # ------------------------------------------------------------------ the customer's side (control hooks)

    def _customer_session(self, name: str):
        s = self._control_session(name)
        if s.status != "WORKING" or s.unlinked:
            raise ControlError(409, f"session '{name}' is not WORKING")
        return s

    def _customer_message(self, s, message_id: str) -> dict:
        record = self._find_message(s, str(message_id))
        if record is None:
            raise ControlError(404, f"message '{message_id}' is unknown to this session")
        return record

    def customer_react(self, name: str, message_id: str, emoji: str, from_: str | None = None) -> str:
        """The customer reacts to a message of the chat ("" removes it): emits `message.reaction`."""
        with self.lock:
            s = self._customer_session(name)
            target = self._customer_message(s, message_id)
            sender = shapes.normalize_chat(from_) if from_ else target["chatId"]
            record = shapes.protocol_record(target["chatId"], wa_message_id(), from_me=False)
            payload = shapes.reaction_payload(self.engine, record, self._own_id(s), emoji, target["id"])
            if sender != target["chatId"]:
                payload["participant"] = sender  # a group member
            self._set_reaction(target, sender, emoji)
            self._emit(s, "message.reaction", payload)
            return record["id"]

    def customer_edit(self, name: str, message_id: str, text: str) -> str:
        """The customer edits one of their messages: emits `message.edited`."""
        with self.lock:
            s = self._customer_session(name)
            target = self._customer_message(s, message_id)
            if target["id"].startswith("true_"):
                raise ControlError(409, "the customer can only edit their own messages")
            record = shapes.protocol_record(target["chatId"], wa_message_id(), from_me=False, body=text)
            record["ack"] = 2
            target["body"], target["edited"] = text, True
            self._emit(s, "message.edited", shapes.edited_payload(self.engine, record, self._own_id(s), target))
            return record["id"]

    def customer_revoke(self, name: str, message_id: str) -> str:
        """The customer deletes one of their messages for everyone: emits `message.revoked`."""
        with self.lock:
            s = self._customer_session(name)
            target = self._customer_message(s, message_id)
            if target["id"].startswith("true_"):
                raise ControlError(409, "the customer can only delete their own messages")
            record = shapes.protocol_record(target["chatId"], wa_message_id(), from_me=False)
            record["ack"] = 2
            self._revoke(s, target, record)
            return record["id"]

    def customer_read(self, name: str, chat_id: str | None = None, message_ids: list | None = None) -> list[str]:
        """The customer opens the chat on their phone: our messages there (or the given ones) get a READ ack."""
        with self.lock:
            s = self._customer_session(name)
            if message_ids:
                targets = [self._customer_message(s, m) for m in message_ids]
            else:
                chat = shapes.normalize_chat(chat_id) if chat_id else None
                targets = [r for r in s.outbox.values() if chat is None or r["chatId"] == chat]
            read = [r["id"] for r in targets if r["id"].startswith("true_") and r.get("ack", 0) < 3]
            for record in targets:
                if record["id"] in read:
                    self._emit_ack(s, record, 3)
            return read

    def customer_typing(self, name: str, chat_id: str, state: str = "typing") -> dict:
        """The customer types (or records, pauses, goes online/offline) in the chat: emits `presence.update`."""
        if state not in shapes.PRESENCES:
            raise ControlError(400, f"state must be one of {', '.join(shapes.PRESENCES)}")
        with self.lock:
            s = self._customer_session(name)
            chat = shapes.normalize_chat(chat_id)
            payload = shapes.presence_payload(chat, chat, state)
            self._emit(s, "presence.update", payload)
            return payload

    def set_contact(
        self, name: str, contact_id: str, *, saved_name=_UNSET, push_name=_UNSET, picture=_UNSET, lid=_UNSET
    ):
        """Change what WhatsApp knows of a contact: the name saved on our phone, the push name they chose, their
        profile picture (True: a new one, served by the simulator; False or None: none) and their LID."""
        with self.lock:
            s = self._control_session(name)
            chat = shapes.normalize_chat(contact_id)
            info = self._contact(s, chat)
            if saved_name is not _UNSET:
                info["name"] = saved_name or None
            if push_name is not _UNSET:
                info["pushname"] = push_name or None
            if lid is not _UNSET:
                info["lid"] = (lid if "@" in str(lid) else f"{lid}@lid") if lid else None
            if picture is not _UNSET:
                info["picture"] = self._new_picture(chat) if picture else None
            return {"id": chat, **copy.deepcopy(info)}

    # ------------------------------------------------------------------ internals

    def _new_picture(self, chat: str) -> str:
        token = uniqid()
        self.pictures[token] = screen_png(f"profile picture of {chat} ({token})")
        return f"{self.settings.base_url}/_sim/pictures/{token}.png"

    @staticmethod
    def _set_reaction(target: dict, sender: str, emoji: str) -> None:
        reactions = target.setdefault("reactions", {})
        if emoji:
            reactions[sender] = emoji
        else:
            reactions.pop(sender, None)

    def _revoke(self, s, target: dict, record: dict) -> None:
        before_ack = target.get("ack", 0)
        target["revoked"] = True
        payload = shapes.revoked_payload(self.engine, record, self._own_id(s), target, before_ack)
        self._emit(s, "message.revoked", payload)

    def contacts_of(self, name: str) -> dict:
        with self.lock:
            s = self.sessions.get(name)
            return copy.deepcopy(s.contacts) if s is not None else {}

    def read_receipts(self, name: str) -> list[dict]:
        """What `messages/read` marked read, oldest first: `[{chatId, ids, at}]`."""
        with self.lock:
            s = self.sessions.get(name)
            return copy.deepcopy(s.reads) if s is not None else []

    def deleted_chats(self, name: str) -> list[dict]:
        """Every chat deleted through `DELETE /api/{s}/chats/{chatId}`: `[{chatId, at}]`."""
        with self.lock:
            s = self.sessions.get(name)
            return copy.deepcopy(s.deleted_chats) if s is not None else []

    def typing_log(self, name: str) -> list[dict]:
        """Every startTyping/stopTyping call: `[{chatId, state, at}]`."""
        with self.lock:
            s = self.sessions.get(name)
            return copy.deepcopy(s.typing) if s is not None else []
