"""What each WAHA event does to the portal's rows: a table from event name to handler (`HANDLERS`).

A handler gets the batch state (`_Batch`), the stored event, its session and the event's `payload` object, and
changes rows in the open transaction (processing commits). `_Skip` marks an event that can never apply. Events
without a handler are stored and forwarded only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import ACK_NAMES, STATUS_RANK, Message, WahaSession, WebhookEvent
from portal.services.audit import Actor
from portal.services.inbox.upkeep import ChatUpkeep, push_name_of
from portal.services.media import media_record

WAHA = Actor(type="waha", label="waha")

_ACK_COLUMN = {
    "SERVER": "server_at",
    "DEVICE": "delivered_at",
    "READ": "read_at",
    "PLAYED": "played_at",
    "ERROR": "failed_at",
}


@dataclass
class _Batch:
    """State of one processing transaction."""

    sessions: dict[str, WahaSession]
    messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    new_messages: list[Message] = field(default_factory=list)
    media: list[tuple[Message, str]] = field(default_factory=list)
    forward: list[tuple[WebhookEvent, WahaSession]] = field(default_factory=list)
    notices: list[Any] = field(default_factory=list)
    limits_to_check: set[str] = field(default_factory=set)  # sessions whose WhatsApp limits WAHA says changed
    inbox: ChatUpkeep = field(default_factory=ChatUpkeep)  # chats and contacts, written once per batch


class _Skip(Exception):
    """An event that cannot be applied, ever (no id, malformed): recorded as failed at once."""


def _message_id(payload: dict[str, Any], key: str = "id") -> str | None:
    value = payload.get(key)
    if isinstance(value, dict):
        value = value.get("_serialized")
    return value if isinstance(value, str) and value else None


_MESSAGE_EVENTS = (
    "message",
    "message.any",
    "message.ack",
    "message.ack.group",
    "message.edited",
    "message.reaction",
    "message.revoked",
)


def _target_ids(event: WebhookEvent) -> list[str]:
    payload = (event.payload or {}).get("payload") or {}
    if not isinstance(payload, dict):
        return []
    name = event.event
    if name in ("message", "message.any", "message.ack", "message.ack.group"):
        return [i for i in [_message_id(payload)] if i]
    if name == "message.reaction":
        reaction = payload.get("reaction") or {}
        return [i for i in [reaction.get("messageId") if isinstance(reaction, dict) else None] if i]
    if name == "message.edited":
        return [i for i in [payload.get("editedMessageId")] if isinstance(i, str)]
    if name == "message.revoked":
        before = payload.get("before") or {}
        ids = [_message_id(before) if isinstance(before, dict) else None, payload.get("revokedMessageId")]
        return [i for i in ids if isinstance(i, str) and i]
    return []


def _when(event: WebhookEvent) -> datetime:
    stamp = (event.payload or {}).get("timestamp")
    if isinstance(stamp, (int, float)) and stamp > 0:
        try:
            return datetime.fromtimestamp(stamp / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return event.received_at


# ---------------------------------------------------------------------------------------------- messages


def _chat_of(message_id: str, payload: dict[str, Any], from_me: bool) -> str:
    parts = message_id.split("_", 2)
    if len(parts) == 3 and parts[0] in ("true", "false") and "@" in parts[1]:
        return parts[1][:128]
    # Engines differ on from/to for own messages; the id is the one rule, this is the fallback.
    other = payload.get("to") if from_me else payload.get("from")
    return str(other or payload.get("from") or "unknown")[:128]


def _from_me(message_id: str, payload: dict[str, Any]) -> bool:
    if "fromMe" in payload:
        return bool(payload.get("fromMe"))
    return message_id.startswith("true_")


def _find(batch: _Batch, session: WahaSession, message_id: str) -> Message | None:
    message = batch.messages.get((session.id, message_id))
    if message is not None or message_id.count("_") >= 2:
        return message
    # A short WhatsApp id (some engines' revoked/edited ids): match the tail of the serialized id, first among
    # this batch's own new rows (not written yet), then in the table.
    for (session_id, full_id), candidate in batch.messages.items():
        if session_id == session.id and full_id.endswith("_" + message_id):
            return candidate
    escaped = message_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    message = db.session.scalars(
        select(Message)
        .where(Message.session_id == session.id, Message.waha_message_id.like(f"%\\_{escaped}", escape="\\"))
        .limit(1)
    ).first()
    if message is not None:
        batch.messages[(session.id, message.waha_message_id or "")] = message
    return message


def _placeholder(batch: _Batch, session: WahaSession, message_id: str, payload: dict[str, Any]) -> Message | None:
    """A row for a message we heard of before its own event (an ack that overtook it); the message fills it."""
    if message_id.count("_") < 2:
        return None
    from_me = _from_me(message_id, payload)
    message = Message(
        tenant_id=session.tenant_id,
        session_id=session.id,
        direction="out" if from_me else "in",
        source="app" if from_me else "inbound",
        waha_message_id=message_id[:255],
        chat_id=_chat_of(message_id, payload, from_me),
        from_me=from_me,
        status="PENDING",
        extra={"placeholder": True},
    )
    db.session.add(message)
    batch.new_messages.append(message)
    batch.messages[(session.id, message_id[:255])] = message
    return message


def _advance(message: Message, status: str | None, when: datetime) -> None:
    """Move the delivery status forward only, and stamp when each step was reached."""
    if status not in STATUS_RANK:
        return
    column = _ACK_COLUMN.get(status)
    if column and getattr(message, column) is None:
        setattr(message, column, when)
    current = STATUS_RANK.get(message.status, -1)
    if message.status != "ERROR" and STATUS_RANK[status] > current:
        message.status = status


def _ack_status(payload: dict[str, Any]) -> str | None:
    ack = payload.get("ack")
    if isinstance(ack, int) and not isinstance(ack, bool):
        return ACK_NAMES.get(ack)
    name = payload.get("ackName")
    return name if name in STATUS_RANK else None


def _waha_details(payload: dict[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if payload.get("participant"):
        details["participant"] = str(payload["participant"])[:128]
    reply = payload.get("replyTo")
    if isinstance(reply, dict) and reply.get("id"):
        details["reply_to"] = str(reply["id"])[:255]
    if isinstance(payload.get("location"), dict):
        location = payload["location"]
        details["location"] = {
            k: location.get(k) for k in ("latitude", "longitude", "name", "address") if location.get(k) is not None
        }
    if payload.get("vCards"):
        details["vcards"] = len(payload["vCards"]) if isinstance(payload["vCards"], list) else 1
    return details


def _on_message(batch: _Batch, event: WebhookEvent, session: WahaSession, payload: dict[str, Any]) -> None:
    message_id = _message_id(payload)
    if not message_id:
        raise _Skip("message event without an id")
    when = _when(event)
    from_me = _from_me(message_id, payload)
    message = batch.messages.get((session.id, message_id)) or _find(batch, session, message_id)
    fill = message is None or bool((message.extra or {}).get("placeholder"))
    if message is None:
        source = payload.get("source")
        message = Message(
            tenant_id=session.tenant_id,
            session_id=session.id,
            direction="out" if from_me else "in",
            source=("api" if source == "api" else "app") if from_me else "inbound",
            waha_message_id=message_id[:255],
            chat_id=_chat_of(message_id, payload, from_me),
            from_me=from_me,
            status="PENDING",
            extra={},
        )
        db.session.add(message)
        batch.new_messages.append(message)
        batch.messages[(session.id, message_id[:255])] = message
    timestamp = payload.get("timestamp")
    if isinstance(timestamp, (int, float)) and message.wa_timestamp is None:
        message.wa_timestamp = int(timestamp)
    if fill:
        extra = {k: v for k, v in (message.extra or {}).items() if k != "placeholder"}
        details = _waha_details(payload)
        if details:
            extra["waha"] = details
        message.extra = extra
        if from_me and payload.get("source") in ("api", "app"):
            message.source = payload["source"]
        body = payload.get("body")
        message.body = body if isinstance(body, str) else message.body
        if from_me and message.sent_at is None and isinstance(timestamp, (int, float)):
            message.sent_at = datetime.fromtimestamp(timestamp, tz=UTC)
    elif message.body is None and isinstance(payload.get("body"), str):
        message.body = payload["body"]
    if message.media is None:
        media, url = media_record(payload)
        if media is not None:
            message.media = media
            if url:
                batch.media.append((message, url))
    _advance(message, _ack_status(payload), when)
    batch.inbox.touch(message, when, new=fill, push_name=push_name_of(payload))


def _on_ack(batch: _Batch, event: WebhookEvent, session: WahaSession, payload: dict[str, Any]) -> None:
    message_id = _message_id(payload)
    if not message_id:
        raise _Skip("ack without a message id")
    status = _ack_status(payload)
    if status is None:
        return  # UNKNOWN acks (GOWS errors) carry no step to record
    message = _find(batch, session, message_id) or _placeholder(batch, session, message_id, payload)
    if message is None:
        raise _Skip(f"ack for an unknown short message id {message_id!r}")
    if event.event == "message.ack.group" and payload.get("participant"):
        # Per-participant receipts: the message moves forward as the first recipient gets there.
        extra = dict(message.extra or {})
        receipts = dict(extra.get("receipts") or {})
        participant = str(payload["participant"])[:128]
        if STATUS_RANK.get(status, -1) > STATUS_RANK.get(receipts.get(participant, ""), -1):
            receipts[participant] = status
            if len(receipts) <= 256:
                extra["receipts"] = receipts
                message.extra = extra
    _advance(message, status, _when(event))
    batch.inbox.change(message)


def _target(batch: _Batch, session: WahaSession, ids: list[str], payload: dict[str, Any]) -> Message:
    for message_id in ids:
        message = _find(batch, session, message_id)
        if message is not None:
            return message
    for message_id in ids:
        message = _placeholder(batch, session, message_id, payload)
        if message is not None:
            return message
    raise _Skip("the message this event refers to is unknown")


def _on_reaction(batch: _Batch, event: WebhookEvent, session: WahaSession, payload: dict[str, Any]) -> None:
    reaction = payload.get("reaction")
    if not isinstance(reaction, dict) or not reaction.get("messageId"):
        raise _Skip("reaction without a message id")
    message = _target(batch, session, [str(reaction["messageId"])], {})
    sender = "me" if payload.get("fromMe") else str(payload.get("participant") or payload.get("from") or "unknown")
    reactions = dict(message.reactions or {})
    text = reaction.get("text") or ""
    if text:
        reactions[sender[:128]] = {"text": str(text)[:32], "at": _when(event).isoformat()}
    else:
        reactions.pop(sender[:128], None)
    message.reactions = reactions or None


def _on_edited(batch: _Batch, event: WebhookEvent, session: WahaSession, payload: dict[str, Any]) -> None:
    target = payload.get("editedMessageId")
    if not isinstance(target, str) or not target:
        raise _Skip("edit without editedMessageId")
    message = _target(batch, session, [target], {"fromMe": payload.get("fromMe")})
    extra = dict(message.extra or {})
    if message.body is not None and "original_body" not in extra:
        extra["original_body"] = message.body
        message.extra = extra
    if isinstance(payload.get("body"), str):
        message.body = payload["body"]
    message.edited_at = _when(event)
    batch.inbox.change(message)


def _on_revoked(batch: _Batch, event: WebhookEvent, session: WahaSession, payload: dict[str, Any]) -> None:
    ids = _target_ids(event)
    if not ids:
        raise _Skip("revoke without a message id")
    before = payload.get("before") if isinstance(payload.get("before"), dict) else {}
    message = _target(batch, session, ids, before or {})
    message.revoked_at = _when(event)
    batch.inbox.change(message)


def _on_status(batch: _Batch, event: WebhookEvent, session: WahaSession, payload: dict[str, Any]) -> None:
    from portal.services import attention
    from portal.services.sessions import apply_status

    status = payload.get("status")
    if not isinstance(status, str) or not status:
        raise _Skip("session.status without a status")
    envelope = event.payload or {}
    me = envelope.get("me") if isinstance(envelope.get("me"), dict) else None
    previous_status, previous_me = session.status, session.me
    apply_status(session, status, me=me, actor=WAHA, source="webhook")
    notice = attention.evaluate(session, previous_status, previous_me)
    if notice is not None:
        batch.notices.append(notice)
    data = payload.get("data")
    timelock = data.get("reachoutTimelock") if isinstance(data, dict) else None
    if status == "WORKING" and isinstance(timelock, dict) and timelock != (session.limits or {}).get("timelock"):
        # WAHA tells of a reach-out timelock: read both limits again (services.number_health) after the commit
        batch.limits_to_check.add(session.id)


Handler = Callable[[_Batch, WebhookEvent, WahaSession, dict[str, Any]], None]

HANDLERS: dict[str, Handler] = {
    "message": _on_message,
    "message.any": _on_message,
    "message.ack": _on_ack,
    "message.ack.group": _on_ack,
    "session.status": _on_status,
    "message.reaction": _on_reaction,
    "message.edited": _on_edited,
    "message.revoked": _on_revoked,
}


def _apply(batch: _Batch, event: WebhookEvent, session: WahaSession) -> None:
    payload = (event.payload or {}).get("payload")
    if not isinstance(payload, dict):
        payload = {}
    handler = HANDLERS.get(event.event)
    if handler is not None:
        handler(batch, event, session, payload)
    # Every other event is stored and forwarded only.
