"""Acting on messages that exist: react, edit, delete for everyone, forward, quote in a reply; read receipts and
typing presence.

Each action is a message WhatsApp carries, so it goes the way a send goes: the session must be WORKING, the
session's pacing applies, WAHA failures come out as the usual ServiceErrors (503 `waha_unavailable` when WAHA is
down, with nothing written), and every action is audited. The rules are WhatsApp's own:

- a reaction can be set on any message that reached WhatsApp and was not deleted ("" removes ours);
- only this account's own messages can be edited (text messages, within `EDIT_WINDOW` of sending) or deleted
  for everyone (within `DELETE_WINDOW`); deleting twice answers the deleted message;
- a forward is a new message in the chat it goes to, sent through the session that has the original (WAHA
  forwards from the account's own store), stored and retried like a send (Idempotency-Key, `send_state`);
- a reply quotes a message of the same chat and session (`replies.reply_target`, used by `send_message`).

Read receipts (`send_read_receipt`) and typing (`send_typing`) are presence signals, not messages: no pacing and
no audit event; typing is best effort and throttled to one WAHA call per `TYPING_EVERY_S` seconds and chat.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis
from emoji import is_emoji
from sqlalchemy.exc import IntegrityError

from portal.extensions import db, redis_store
from portal.i18n import N_, N_f
from portal.models import Message, Tenant, WahaSession, utcnow
from portal.services import audit, idempotency, pacing, servers, upstream
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid
from portal.services.inbox.upkeep import upsert_sent_chat
from portal.services.messages.reading import get_message
from portal.services.messages.replies import on_whatsapp
from portal.services.messages.send_sql import _commit_keeping_loaded_rows, _new_row
from portal.services.messages.sending import _attempt, _by_key
from portal.services.messages.validation import _clean_text, normalize_recipient
from portal.services.sessions import apply_status, get_session
from portal.services.waha_errors import map_waha_error
from portal.waha import WahaClient
from portal.waha import errors as waha_errors
from portal.waha.ids import new_message_id

log = logging.getLogger(__name__)

# WhatsApp lets the sender edit a message for 15 minutes and delete it for everyone for about two days.
EDIT_WINDOW = timedelta(minutes=15)
DELETE_WINDOW = timedelta(days=2)
TYPING_EVERY_S = 5
TYPING_KEY = "typing:"
# A reaction is one emoji, which may be a sequence of several code points (skin tones, ZWJ families, flags,
# keycaps): printable, no spaces, at least one character beyond Latin-1 (every emoji has one); "" removes.
EMOJI_MAX = 16
EMOJI_PATTERN = r"^$|^[^\u0000-\u0020\u007f-\u00a0]{0,15}[^\u0000-\u00a8][^\u0000-\u0020\u007f-\u00a0]{0,15}$"
_EMOJI_RE = re.compile(EMOJI_PATTERN)
# What a forwarded copy keeps of the original's media description (not where the original's file is stored).
_FORWARDED_MEDIA_KEYS = ("kind", "mimetype", "filename", "caption", "size")

T = TypeVar("T")


# ---- rules ------------------------------------------------------------------------------------------------------


def clean_emoji(emoji: Any) -> str:
    """The reaction as WhatsApp takes it; Invalid(field "emoji") for anything but one emoji or "".

    EMOJI_PATTERN is the rough shape the OpenAPI document can state; the `emoji` package's list of Unicode's emoji
    (with skin tones, ZWJ sequences, flags and keycaps) decides that it is one emoji and nothing else."""
    if emoji == "":
        return emoji
    if not isinstance(emoji, str) or len(emoji) > EMOJI_MAX or not _EMOJI_RE.fullmatch(emoji) or not is_emoji(emoji):
        raise Invalid.field("emoji", N_("Give one emoji, or an empty string to remove your reaction."))
    return emoji


def _own(message: Message, what: str) -> None:
    if not message.from_me:
        raise Conflict(
            N_f("Only messages sent from this WhatsApp account can be %(what)s.", what=what), code="message_not_own"
        )


def _sent_at(message: Message) -> datetime:
    """When WhatsApp got the message: the send time, else WhatsApp's timestamp, else when the row was made."""
    if message.sent_at is not None:
        return message.sent_at
    if message.wa_timestamp:
        return datetime.fromtimestamp(message.wa_timestamp, tz=UTC)
    return message.created_at


def _within(message: Message, window: timedelta, code: str, what: str) -> None:
    if utcnow() - _sent_at(message) > window:
        raise Conflict(
            N_f(
                "WhatsApp allows %(what)s only within %(words)s of sending; this message is older.",
                what=what,
                words=_words(window),
            ),
            code=code,
            details={"sentAt": _sent_at(message).isoformat(), "windowSeconds": int(window.total_seconds())},
        )


def _words(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    return f"{minutes} minutes" if minutes < 120 else f"{minutes // 1440} days"


def _working(session: WahaSession) -> None:
    if session.status != "WORKING":
        raise Conflict(
            N_f("The session is %(status)s; it must be WORKING for this.", status=session.status),
            code="session_not_ready",
            details={"status": session.status, "expected": ["WORKING"]},
        )


def _chat(chat_id: Any) -> str:
    """A chat id (or a phone number) as WAHA names the chat; Invalid(field "chatId") otherwise."""
    try:
        return normalize_recipient(chat_id)
    except Invalid as exc:
        raise Invalid.field("chatId", exc.message) from None


def _call(session: WahaSession, call: Callable[[WahaClient], T]) -> T:
    """One WAHA call for the session; a failure becomes the ServiceError every service raises for it."""
    try:
        return call(servers.client_for(session.server))
    except waha_errors.WahaError as exc:
        if isinstance(exc, waha_errors.WahaSessionNotReady) and exc.session_status:
            apply_status(session, exc.session_status, source="action")
            db.session.commit()
        raise map_waha_error(exc, session) from exc


def _ready(tenant: Tenant, message: Message) -> WahaSession:
    """The message's session, WORKING, with a pacing slot taken for the action."""
    session = get_session(tenant, message.session_id)
    _working(session)
    pacing.acquire(session.id, tenant.send_rate_per_minute)
    return session


def _audit(tenant: Tenant, action: str, actor: Actor, message: Message, **details: Any) -> None:
    audit.record(
        tenant.id,
        action,
        actor,
        target_type="message",
        target_id=message.id,
        details={"session_id": message.session_id, "chat_id": message.chat_id, **details},
    )


# ---- react, edit, delete ------------------------------------------------------------------------------------------


def react(tenant: Tenant, actor: Actor, message_id: Any, emoji: str) -> Message:
    """Set this account's reaction to one of the tenant's messages ("" removes it); answers the message with
    its reactions. Conflict "message_deleted" / "message_not_sent" when WhatsApp cannot show it."""
    message = get_message(tenant, message_id)
    emoji = clean_emoji(emoji)
    on_whatsapp(message)
    session = _ready(tenant, message)
    waha_id = message.waha_message_id or ""
    _call(session, lambda client: client.react(session.external_name, waha_id, emoji))
    reactions = dict(message.reactions or {})
    if emoji:
        reactions["me"] = {"text": emoji, "at": utcnow().isoformat()}
    else:
        reactions.pop("me", None)
    message.reactions = reactions or None
    _audit(tenant, "message.react", actor, message, emoji=emoji or None)
    db.session.commit()
    return message


def edit_message(tenant: Tenant, actor: Actor, message_id: Any, text: Any) -> Message:
    """Replace the text of a text message this account sent, within WhatsApp's edit window; the first text is
    kept in the message's metadata (`original_body`). The same text again changes nothing."""
    message = get_message(tenant, message_id)
    text = _clean_text(text)
    if text is None:
        raise Invalid.field("text", N_("Give the new text."))
    on_whatsapp(message)
    _own(message, "edited")
    if message.media is not None:
        raise Conflict(N_("Only text messages can be edited."), code="message_not_editable")
    _within(message, EDIT_WINDOW, "edit_window_passed", "edits")
    if text == message.body:
        return message
    session = _ready(tenant, message)
    waha_id = message.waha_message_id or ""
    _call(session, lambda client: client.edit_message(session.external_name, message.chat_id, waha_id, text))
    extra = dict(message.extra or {})
    extra.setdefault("original_body", message.body)
    message.extra = extra
    message.body = text
    message.edited_at = utcnow()
    _audit(tenant, "message.edit", actor, message)
    db.session.commit()
    return message


def delete_message(tenant: Tenant, actor: Actor, message_id: Any) -> Message:
    """Delete a message this account sent for everyone in the chat, within WhatsApp's window; a message that
    is already deleted is answered as it is."""
    message = get_message(tenant, message_id)
    if message.revoked_at is not None:
        return message
    on_whatsapp(message)
    _own(message, "deleted for everyone")
    _within(message, DELETE_WINDOW, "delete_window_passed", "deleting for everyone")
    session = _ready(tenant, message)
    waha_id = message.waha_message_id or ""
    _call(session, lambda client: client.delete_message(session.external_name, message.chat_id, waha_id))
    message.revoked_at = utcnow()
    _audit(tenant, "message.delete", actor, message)
    db.session.commit()
    return message


# ---- forward and reply --------------------------------------------------------------------------------------------


def forward_message(
    tenant: Tenant,
    actor: Actor,
    message_id: Any,
    *,
    session_id: Any,
    to: str,
    idempotency_key: str | None = None,
    source: str = "api",
) -> Message:
    """Forward one of the tenant's messages to another chat and return the new message (stored and sent like a
    send: PENDING until WAHA answers, then acks move it on; a 503 carries details.outcome and messageId).

    WAHA forwards from the account's own store, so `session_id` must be the session that has the message
    (Invalid on "sessionId" otherwise); another tenant's message or session is a 404.
    """
    original = get_message(tenant, message_id)
    session = get_session(tenant, session_id)
    chat_id = normalize_recipient(to)
    key = idempotency.clean_key(idempotency_key)
    if key:
        existing = _by_key(tenant.id, key)
        if existing is None and idempotency.used(tenant.id, idempotency.SCHEDULE_SCOPE, key):
            raise idempotency.reused_elsewhere()  # the key scheduled a message: it cannot also forward one
        if existing is not None:
            return _same_forward(existing, session.id, chat_id, original.id)
    on_whatsapp(original)
    if session.id != original.session_id:
        raise Invalid.field("sessionId", N_("Forward through the session that has the message."))
    _working(session)
    pacing.acquire(session.id, tenant.send_rate_per_minute)
    media = None
    if original.media is not None:
        media = {k: original.media[k] for k in _FORWARDED_MEDIA_KEYS if original.media.get(k) is not None}
    pre_id = new_message_id()
    message = _new_row(
        tenant_id=tenant.id,
        session_id=session.id,
        direction="out",
        source=source,
        waha_message_id=f"true_{chat_id}_{pre_id}",
        chat_id=chat_id,
        from_me=True,
        body=original.body,
        media=media,
        status="PENDING",
        idempotency_key=key,
        extra={"forwarded_from": original.id},
        send_state="sending",
    )
    db.session.add(message)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()  # a concurrent request with the same key won the race; its message is the answer
        existing = _by_key(tenant.id, key) if key else None
        if existing is None:
            raise
        return _same_forward(existing, session.id, chat_id, original.id)
    upsert_sent_chat(message)
    details = {"session_id": session.id, "chat_id": chat_id, "message_id": message.id, "forwarded_from": original.id}
    audit.record(tenant.id, "message.forward", actor, target_type="message", target_id=message.id, details=details)
    waha_id = original.waha_message_id or ""
    call = functools.partial(_forward, servers.client_for(session.server), session.external_name, chat_id, waha_id)
    _commit_keeping_loaded_rows()  # the row is read on after the call: no reload
    return _attempt(tenant, actor, message, details, call, pre_id, False)


def _forward(client: WahaClient, external: str, chat_id: str, original_id: str, pre_id: str) -> Any:
    return client.forward_message(external, chat_id, original_id, new_message_id=pre_id)


def _same_forward(existing: Message, session_id: str, chat_id: str, original_id: int) -> Message:
    forwarded_from = (existing.extra or {}).get("forwarded_from")
    if (existing.session_id, existing.chat_id, forwarded_from) != (session_id, chat_id, original_id):
        raise Conflict(
            N_("This Idempotency-Key was already used for a different message."), code="idempotency_key_reused"
        )
    return existing


# ---- read receipts and typing -------------------------------------------------------------------------------------


def send_read_receipt(tenant: Tenant, session_id: Any, chat_id: Any) -> None:
    """Tell WhatsApp the chat was read (the customer's phone shows blue ticks), unless the tenant turned read
    receipts off (`Tenant.read_receipts`). NotFound for another tenant's session, Invalid for a bad chat id,
    Conflict "session_not_ready" when the session is not WORKING, Upstream (503) when WAHA is down: a caller
    that marks the chat read in the portal first may ignore these."""
    session = get_session(tenant, session_id)
    chat = _chat(chat_id)
    if not tenant.read_receipts:
        return
    _working(session)
    _call(session, lambda client: client.read_chat(session.external_name, chat))


def send_typing(tenant: Tenant, actor: Actor, session_id: Any, chat_id: Any) -> bool:
    """Show "typing..." in the chat while someone composes; True when WAHA was called.

    At most one call per chat every TYPING_EVERY_S seconds, whoever types (one Redis SET NX EX across every
    process); skipped silently while Redis is down, the session is not WORKING or WAHA fails: typing presence
    is a courtesy, never an error. NotFound for another tenant's session, Invalid for a bad chat id.
    """
    session = get_session(tenant, session_id)
    chat = _chat(chat_id)
    if session.status != "WORKING":
        return False
    try:
        first = redis_store.client.set(f"{TYPING_KEY}{session.id}:{chat}", "1", nx=True, ex=TYPING_EVERY_S)
    except redis.RedisError as exc:
        log.info("typing not sent: Redis is unavailable (%s)", type(exc).__name__)
        return False
    if not first:
        return False
    try:
        servers.client_for(session.server).start_typing(session.external_name, chat)
    except waha_errors.WahaError as exc:
        upstream.log_failure("typing not sent", exc, session=session.id, actor=actor.label)
        return False
    return True
