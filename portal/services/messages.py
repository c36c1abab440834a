"""Messages of a tenant: sending through WAHA (paced, idempotent, recorded before the call) and reading the log.

A send writes its row (status PENDING, with the WhatsApp id we pre-generate and WAHA sends under) and commits
before WAHA is called, so a crash in between leaves a visible PENDING row rather than an unrecorded message,
and acks that arrive over the webhook find the row. Afterwards the row gets WAHA's id and the send time. A
WAHA failure that provably never reached WhatsApp marks it ERROR; any other leaves it PENDING with its outcome
unknown, for acks, a retry with the same Idempotency-Key or the reconcile job to settle (services.outbox).
Acks move the status forward later (events processing).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlparse

from flask import current_app
from sqlalchemy import (
    Integer, String, Text, bindparam, case, cast, func, insert, literal, select, tuple_, type_coerce, update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from portal.extensions import db
from portal.models import (
    ACK_NAMES, STATUS_RANK, AuditEvent, Message, Tenant, WahaServer, WahaSession, get_for_tenant, utcnow,
)
from portal.services import audit, destinations, idempotency, outbox, pacing, servers, upstream
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid, NotFound
from portal.services.recipients import normalize_recipient
from portal.services.sessions import apply_status, get_session
from portal.services.waha_errors import map_waha_error
from portal.waha import errors as waha_errors
from portal.waha.ids import new_message_id

TEXT_MAX = 4096
CAPTION_MAX = 1024
FILENAME_MAX = 255
METADATA_MAX_ENTRIES = 20
METADATA_VALUE_MAX = 500
PAGE_MAX = 200
Q_MAX = 200

MEDIA_KINDS = ("image", "document", "audio", "video")
# What WhatsApp accepts per kind; documents may be any type except programs.
MEDIA_TYPES = {
    "image": {"image/jpeg", "image/png", "image/webp", "image/gif"},
    "video": {"video/mp4", "video/3gpp", "video/quicktime", "video/webm"},
    "audio": {"audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr", "audio/wav", "audio/x-wav",
              "audio/webm", "audio/opus"},
}
BLOCKED_DOCUMENT_TYPES = {"application/x-msdownload", "application/x-msdos-program", "application/x-executable",
                          "application/x-sharedlib", "application/vnd.microsoft.portable-executable"}
_MIMETYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
# Magic bytes of the image types, so a "photo" that is really something else is refused here, not by WhatsApp.
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class MessagePage:
    """One page of messages, newest first; pass `next_cursor` back to get the next page (None on the last)."""

    items: list[Message]
    next_cursor: str | None


@dataclass(frozen=True)
class ChatSummary:
    """A conversation of a session: its chat id, newest message, number of messages and when it was last active."""

    chat_id: str
    last_message: Message
    count: int
    last_at: datetime


# ---------------------------------------------------------------------------------------------- validation

def _clean_text(text: Any, field: str = "text", limit: int = TEXT_MAX) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise Invalid.field(field, "Text must be a string.")
    if not text.strip():
        return None
    if len(text) > limit:
        raise Invalid.field(field, f"Text must be at most {limit} characters.")
    return text


def _base_type(mimetype: str) -> str:
    return mimetype.split(";", 1)[0].strip().lower()


def _decode(data: str, max_bytes: int) -> bytes:
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]  # a data: URI as browsers produce it
    data = re.sub(r"\s+", "", data)
    if len(data) * 3 // 4 > max_bytes + 3:
        raise Invalid.field("media.data", f"The file is larger than {max_bytes} bytes.")
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid.field("media.data", "The file must be base64 encoded.") from None
    if not content:
        raise Invalid.field("media.data", "The file is empty.")
    if len(content) > max_bytes:
        raise Invalid.field("media.data", f"The file is larger than {max_bytes} bytes.")
    return content


def _sniff_image(content: bytes) -> str | None:
    for magic, mimetype in _IMAGE_MAGIC:
        if content.startswith(magic):
            return mimetype
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


def _check_url(url: Any) -> str:
    # WAHA downloads this file and sends it on: the URL passes the portal's destination policy first.
    if not isinstance(url, str) or not url.strip():
        raise Invalid.field("media.url", "The file URL must be an http:// or https:// URL.")
    return destinations.clean_url(url, "media.url", "file URL")


def clean_media(media: Any) -> tuple[str, dict[str, Any], dict[str, Any], str | None]:
    """Validate a media dict; returns (kind, file for WAHA, description to store, caption)."""
    if not isinstance(media, dict):
        raise Invalid.field("media", "Media must be an object.")
    kind = media.get("kind") or media.get("type")
    if kind not in MEDIA_KINDS:
        raise Invalid.field("media.kind", f"Media kind must be one of {', '.join(MEDIA_KINDS)}.")
    has_url, has_data = bool(media.get("url")), bool(media.get("data"))
    if has_url == has_data:
        raise Invalid.field("media", "Give the file either as url or as base64 data, not both.")
    filename = media.get("filename")
    if filename is not None and (not isinstance(filename, str) or len(filename) > FILENAME_MAX
                                 or "/" in filename or "\\" in filename):
        raise Invalid.field("media.filename", f"Filename must be a plain name of at most {FILENAME_MAX} characters.")
    source_name = filename or (urlparse(media["url"]).path.rsplit("/", 1)[-1] if has_url else None)
    mimetype = media.get("mimetype") or (mimetypes.guess_type(source_name)[0] if source_name else None)
    if not isinstance(mimetype, str) or not _MIMETYPE_RE.match(_base_type(mimetype)):
        raise Invalid.field("media.mimetype", "A valid mimetype (e.g. image/jpeg) is required.")
    base = _base_type(mimetype)
    allowed = MEDIA_TYPES.get(kind)
    if (allowed is not None and base not in allowed) or (kind == "document" and base in BLOCKED_DOCUMENT_TYPES):
        raise Invalid.field("media.mimetype", f"{base} cannot be sent as {kind}.")
    caption = _clean_text(media.get("caption"), "media.caption", CAPTION_MAX)
    if caption is not None and kind == "audio":
        raise Invalid.field("media.caption", "Voice messages have no caption.")

    file: dict[str, Any] = {"mimetype": mimetype}
    stored: dict[str, Any] = {"kind": kind, "mimetype": mimetype}
    if filename:
        file["filename"] = stored["filename"] = filename
    if has_url:
        file["url"] = stored["url"] = _check_url(media["url"])
    else:
        if not isinstance(media["data"], str):
            raise Invalid.field("media.data", "The file must be base64 encoded.")
        content = _decode(media["data"], current_app.config["MEDIA_MAX_BYTES"])
        if kind == "image" and _sniff_image(content) != base:
            raise Invalid.field("media.mimetype", f"The file is not a {base} image.")
        file["data"] = base64.b64encode(content).decode("ascii")
        stored["size"] = len(content)
        stored["sha256"] = hashlib.sha256(content).hexdigest()
    if caption is not None:
        stored["caption"] = caption
    return kind, file, stored, caption


def _clean_metadata(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > METADATA_MAX_ENTRIES or not all(
            isinstance(k, str) and isinstance(v, (str, int, float, bool)) and len(str(v)) <= METADATA_VALUE_MAX
            for k, v in metadata.items()):
        raise Invalid.field("metadata", f"Metadata must map at most {METADATA_MAX_ENTRIES} names to short values.")
    return {k: str(v) if not isinstance(v, str) else v for k, v in metadata.items()}


# ---------------------------------------------------------------------------------------------- sending

def _by_key(tenant_id: int, key: str) -> Message | None:
    return db.session.scalar(select(Message).where(Message.tenant_id == tenant_id, Message.idempotency_key == key))


def _same_request(message: Message, session_id: str, chat_id: str, body: str | None,
                  media: dict[str, Any] | None) -> Message:
    """The stored message if it answers the same request; Conflict when the key was used for another one."""
    if (message.session_id, message.chat_id, message.body, message.media) != (session_id, chat_id, body, media):
        raise Conflict("This Idempotency-Key was already used for a different message.",
                       code="idempotency_key_reused")
    return message


def _send_to_waha(client: Any, name: str, chat_id: str, text: str | None, kind: str | None, file: dict | None,
                  caption: str | None, reply_to: str | None, message_id: str) -> Any:
    if kind is None:
        return client.send_text(name, chat_id, text or "", message_id=message_id, reply_to=reply_to)
    if kind == "image":
        return client.send_image(name, chat_id, file, caption=caption, message_id=message_id)
    if kind == "video":
        return client.send_video(name, chat_id, file, caption=caption, message_id=message_id)
    if kind == "audio":
        return client.send_voice(name, chat_id, file, message_id=message_id)
    return client.send_file(name, chat_id, file, caption=caption, message_id=message_id)


@dataclass(frozen=True)
class _SendTarget:
    """What a send needs of its session: the WAHA name, the status and the server to call."""

    id: str
    status: str
    external_name: str
    server: WahaServer


# The session's columns the send reads and its server's address and key, tenant-scoped: loading the whole rows
# (JSON columns, the session's encrypted HMAC key) through the ORM costs more CPU than the query. Built once
# for the same reason as the statements below.
_SESSION_FOR_SEND = (
    select(WahaSession.id, WahaSession.status, WahaSession.external_name, WahaServer.base_url,
           type_coerce(WahaServer.api_key, Text).label("stored_api_key"))
    .join(WahaServer, WahaServer.id == WahaSession.server_id)
    .where(WahaSession.id == bindparam("session_id", type_=WahaSession.id.type),
           WahaSession.tenant_id == bindparam("tenant_id", type_=WahaSession.tenant_id.type))
)


def _session_for_send(tenant: Tenant, session_id: Any) -> _SendTarget:
    """The tenant's session to send through; NotFound("session_not_found") as get_session() answers."""
    row = db.session.connection().execute(
        _SESSION_FOR_SEND, {"session_id": str(session_id), "tenant_id": tenant.id}).first() if session_id else None
    if row is None:
        raise NotFound("No such session.", code="session_not_found")
    # servers.client_for() needs only the server's address and key; an unattached row object carries them.
    server = WahaServer(base_url=row.base_url, api_key=_open_api_key(row.stored_api_key))
    return _SendTarget(row.id, row.status, row.external_name, server)


@functools.lru_cache(maxsize=64)
def _open_api_key(stored: str) -> str:
    # The key is stored encrypted; one ciphertext always opens to the same key, so each is decrypted once per
    # process (the server's client keeps the key in memory anyway).
    return WahaServer.api_key.type.process_result_value(stored, None)


def _status_from_response(raw: dict) -> str | None:
    """The ack a send response already carries (WEBJS answers with the message, ack included), if any."""
    ack = raw.get("ack")
    if isinstance(ack, int) and not isinstance(ack, bool) and ack in ACK_NAMES and ack > 0:
        return ACK_NAMES[ack]
    return None


def send_message(tenant: Tenant, session_id: Any, actor: Actor, *, to: str, text: str | None = None,
                 media: dict[str, Any] | None = None, reply_to: str | None = None,
                 metadata: dict[str, Any] | None = None, idempotency_key: str | None = None,
                 source: str = "api") -> Message:
    """Send a text or a media message through the session and return its row.

    Checks, in order: the input (recipient normalised with `phonenumbers`, text <= 4096 characters, media kind,
    type and size), a repeated Idempotency-Key (returns the first message and never sends twice, except that a
    send that provably never reached WhatsApp is tried again, and a text whose outcome is unknown is sent again
    under the same WhatsApp id, which WAHA deduplicates: see services.outbox), the session is WORKING (else
    Conflict "session_not_ready" with details.status), the session's pacing (RateLimited with retry_after).
    WAHA failures raise the mapped ServiceError (Upstream 503 when WAHA is down or did not answer) with
    details.outcome "unsent" (row ERROR) or "unknown" (row PENDING). Audited as "message.send" without the
    message text.
    """
    session = _session_for_send(tenant, session_id)
    chat_id = normalize_recipient(to)
    text = _clean_text(text)
    kind = file = stored_media = caption = None
    if media is not None:
        kind, file, stored_media, caption = clean_media(media)
        if caption is None and text is not None:
            if kind == "audio":
                raise Invalid.field("text", "Voice messages have no text; send the text separately.")
            if len(text) > CAPTION_MAX:
                raise Invalid.field("text", f"A caption must be at most {CAPTION_MAX} characters.")
            caption = stored_media["caption"] = text
    elif text is None:
        raise Invalid.field("text", "Give a text or a media file to send.")
    if reply_to is not None and (not isinstance(reply_to, str) or not reply_to.strip() or len(reply_to) > 255):
        raise Invalid.field("reply_to", "reply_to must be the id of a message in this chat.")
    extra = _clean_metadata(metadata)
    body = caption if kind else text
    key = idempotency.clean_key(idempotency_key)

    tenant_id = tenant.id
    again_from = None
    if key:
        existing = _by_key(tenant_id, key)
        if existing is not None:
            existing = _same_request(existing, session.id, chat_id, body, stored_media)
            again_from = outbox.another_try(existing)
            if again_from is None:
                if outbox.unsettled(existing) and existing.media is not None:
                    # a media send that may have gone out: find out instead of sending it twice
                    outbox.look_up(servers.client_for(session.server), session.external_name, existing)
                return existing
    if session.status != "WORKING":
        raise Conflict(f"The session is {session.status}; it must be WORKING to send.", code="session_not_ready",
                       details={"status": session.status, "expected": ["WORKING"]})
    pacing.acquire(session.id, tenant.send_rate_per_minute)

    client, external, session_key = servers.client_for(session.server), session.external_name, session.id
    call = functools.partial(_send_to_waha, client, external, chat_id, text, kind, file, caption, reply_to)
    if again_from is not None:
        return _send_again(tenant, actor, existing, again_from, call)
    # WAHA sends under this id and dedupes on it, so the client's retries never make a second message; the
    # row carries the id WAHA will report (true_<chat>_<id>) so early acks find it.
    pre_id = new_message_id()
    predicted_id = f"true_{chat_id}_{pre_id}"
    message = _new_row(
        tenant_id=tenant_id, session_id=session_key, direction="out", source=source,
        waha_message_id=predicted_id, chat_id=chat_id, from_me=True, body=body, media=stored_media,
        status="PENDING", idempotency_key=key, extra=extra, send_state="sending",
    )
    # The audit event records the attempt (who sent what kind to whom); the outcome lives on the row.
    details: dict[str, Any] = {"session_id": session_key, "chat_id": chat_id, "kind": kind or "text"}
    one_statement_each = _statements_commit_themselves()
    try:
        _insert_with_audit(message, actor, details)
        if not one_statement_each:
            _commit_keeping_loaded_rows()
    except IntegrityError:
        # A concurrent request with the same key won the race; its message is the answer.
        db.session.rollback()
        existing = _by_key(tenant_id, key) if key else None
        if existing is None:
            raise
        return _same_request(existing, session_key, chat_id, body, stored_media)
    return _attempt(tenant, actor, message, details, call, pre_id, one_statement_each)


def _send_again(tenant: Tenant, actor: Actor, message: Message, again_from: str,
                call: Callable[[str], Any]) -> Message:
    """Call WAHA again for a stored send whose first call provably never reached WhatsApp (`unsent`), or whose
    outcome is unknown (a text, sent again under its pre-generated id, which WAHA deduplicates).

    The row is claimed first, so two retries racing with one key make one call; the loser answers the row.
    """
    if _statements_commit_themselves():
        _commit_keeping_loaded_rows()  # claim and audit belong together: back to a real transaction
    if not outbox.claim(message, again_from):
        db.session.commit()
        return message
    details: dict[str, Any] = {"session_id": message.session_id, "chat_id": message.chat_id,
                               "kind": (message.media or {}).get("kind", "text"), "message_id": message.id,
                               "previous": again_from}
    audit.record(tenant.id, "message.send_retry", actor, target_type="message", target_id=message.id,
                 details=details)
    _commit_keeping_loaded_rows()
    return _attempt(tenant, actor, message, details, call, outbox.pre_generated_id(message), False)


def _attempt(tenant: Tenant, actor: Actor, message: Message, details: dict[str, Any], call: Callable[[str], Any],
             pre_id: str, one_statement_each: bool) -> Message:
    """Call WAHA for the stored, committed send row and record what came of it.

    A failure that provably never reached WhatsApp marks the row ERROR (send_state "unsent": a retry with the
    same key sends it); any other failure leaves it PENDING with send_state "unknown" for acks, a retry or the
    reconcile job to settle. Either way the caller gets the mapped ServiceError, with `outcome` and `messageId`
    in its details; the tenant-facing texts never carry WAHA's address (services.upstream).
    """
    predicted_id = f"true_{message.chat_id}_{pre_id}"
    try:
        result = call(pre_id)
    except waha_errors.WahaError as exc:
        if one_statement_each:
            _commit_keeping_loaded_rows()  # the failure's writes belong together: back to a real transaction
        outcome = upstream.send_outcome(exc)
        upstream.log_failure("send failed", exc, message=message.id, outcome=outcome)
        if outcome == upstream.UNSENT:
            message.status = "ERROR"
            message.error = f"Not sent: {upstream.describe(exc)}"
            message.failed_at = utcnow()
        message.send_state = outcome
        session = get_session(tenant, message.session_id)
        if isinstance(exc, waha_errors.WahaSessionNotReady) and exc.session_status:
            apply_status(session, exc.session_status, source="send")
        audit.record(tenant.id, "message.send_failed" if outcome == upstream.UNSENT else "message.send_unconfirmed",
                     actor, target_type="message", target_id=message.id,
                     details={**details, "error": type(exc).__name__, "outcome": outcome})
        db.session.commit()
        error = map_waha_error(exc, session)
        error.details = {**error.details, "outcome": outcome, "messageId": message.id}
        raise error from exc

    _record_sent(message, predicted_id, result, _execute_here if one_statement_each else _execute_alone)
    return message


def _statements_commit_themselves() -> bool:
    """True when the session's connection runs each statement as its own transaction (autocommit).

    The API's send endpoints ask for this (`api_route(..., autocommit=True)`, PostgreSQL only): the send then
    needs no BEGIN and COMMIT round trips and keeps one pooled connection from authentication to the answer,
    because each of its writes on the way is a single statement that commits itself.
    """
    if not db.session().in_transaction():
        return False
    return db.session.connection().get_execution_options().get("isolation_level") == "AUTOCOMMIT"


def _new_row(**values: Any) -> Message:
    """A new Message stamped now (the audit event of the send carries the same time)."""
    now = utcnow()
    return Message(**{"created_at": now, "updated_at": now, **values})


# What a send writes into a new message row.
_SEND_COLUMNS = ("tenant_id", "session_id", "direction", "source", "waha_message_id", "chat_id", "from_me", "body",
                 "media", "status", "idempotency_key", "extra", "send_state", "created_at", "updated_at")


# Those other columns, when the database fills them with NULL (no default of either side).
_UNSET_COLUMNS = tuple(attr.key for attr in sa_inspect(Message).column_attrs
                       if attr.key not in _SEND_COLUMNS and not attr.columns[0].primary_key
                       and attr.columns[0].default is None and attr.columns[0].server_default is None)


@functools.cache
def _insert_with_audit_statement() -> Any:
    """The message and its "message.send" audit event in one statement (PostgreSQL: a data-modifying CTE).

    Built once with bound parameters: constructing it per send would cost more CPU than the round trip it
    saves (SQLAlchemy keys its statement cache by a walk of the whole statement).
    """
    sent = insert(Message).values({
        getattr(Message, key): bindparam(f"m_{key}", type_=getattr(Message, key).type) for key in _SEND_COLUMNS
    }).returning(Message.id).cte("sent")
    # The columns audit.record() fills, with the message id taken from the row just inserted.
    event = {
        AuditEvent.tenant_id: bindparam("a_tenant_id", type_=Integer),
        AuditEvent.action: literal("message.send", String),
        AuditEvent.actor_type: bindparam("a_actor_type", type_=String),
        AuditEvent.actor_id: bindparam("a_actor_id", type_=String),
        AuditEvent.actor_label: bindparam("a_actor_label", type_=String),
        AuditEvent.target_type: literal("message", String),
        AuditEvent.target_id: cast(sent.c.id, String),
        AuditEvent.ip: bindparam("a_ip", type_=String),
        AuditEvent.request_id: bindparam("a_request_id", type_=String),
        AuditEvent.details: func.jsonb_build_object(
            literal("session_id", String), bindparam("a_session_id", type_=String),
            literal("message_id", String), sent.c.id,
            literal("chat_id", String), bindparam("a_chat_id", type_=String),
            literal("kind", String), bindparam("a_kind", type_=String)),
        AuditEvent.created_at: bindparam("a_created_at", type_=AuditEvent.created_at.type),
    }
    logged = insert(AuditEvent).from_select(list(event), select(*event.values()).select_from(sent)).cte("logged")
    return select(sent.c.id).add_cte(logged)


def _insert_with_audit(message: Message, actor: Actor, details: dict[str, Any]) -> None:
    """Store the new message and its "message.send" audit event together; `details` (session_id, chat_id,
    kind) gains the message id.

    On PostgreSQL both rows go in with one statement, so they are written atomically in one round trip whether
    or not a transaction surrounds it; elsewhere the ORM inserts them in the caller's transaction.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        db.session.add(message)
        db.session.flush()
        details["message_id"] = message.id
        audit.record(message.tenant_id, "message.send", actor, target_type="message", target_id=message.id,
                     details=details)
        db.session.flush()
        return
    params = {f"m_{key}": getattr(message, key) for key in _SEND_COLUMNS}
    params.update(a_tenant_id=message.tenant_id, a_actor_type=actor.type, a_actor_id=actor.id,
                  a_actor_label=actor.label, a_ip=actor.ip, a_request_id=actor.request_id,
                  a_session_id=details["session_id"], a_chat_id=details["chat_id"], a_kind=details["kind"],
                  a_created_at=message.created_at)
    message.id = db.session.connection().execute(_insert_with_audit_statement(), params).scalar_one()
    details["message_id"] = message.id
    # Known to the session as the stored row it now is, without an INSERT of its own: the columns the
    # statement left out are NULL, so they are set to None rather than loaded on first use (a column with a
    # default would be loaded).
    for key in _UNSET_COLUMNS:
        setattr(message, key, None)
    make_transient_to_detached(message)
    db.session.add(message)


def _commit_keeping_loaded_rows() -> None:
    """Commit without expiring the rows the session holds.

    The send path goes on using the tenant, the session and the new message after its first commit; expired,
    each would be read again (a round trip apiece). Nothing else writes them in between that the send cares
    about: `_record_sent` brings back the columns that webhook processing may have changed meanwhile.
    """
    session = db.session()
    keep = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = keep


@functools.cache
def _sent_update(status: str | None, with_waha_id: bool) -> Any:
    """The UPDATE after WAHA accepted a send (one per ack status and id case, built once: see above)."""
    values: dict[Any, Any] = {Message.sent_at: bindparam("sent_at", type_=Message.sent_at.type),
                              Message.updated_at: bindparam("updated_at", type_=Message.updated_at.type),
                              Message.send_state: None}
    if status:
        # Acks may have moved the row forward over the webhook meanwhile: the status only moves up the ladder.
        lower = [name for name, rank in STATUS_RANK.items() if rank < STATUS_RANK[status] and name != "ERROR"]
        values[Message.status] = case((Message.status.in_(lower), status), else_=Message.status)
    if with_waha_id:
        values[Message.waha_message_id] = bindparam("waha_message_id", type_=Message.waha_message_id.type)
    return (update(Message).where(Message.id == bindparam("message_id", type_=Message.id.type)).values(values)
            .returning(Message.waha_message_id, Message.status))


def _record_sent(message: Message, predicted_id: str, result: Any,
                 execute: Callable[[Any, dict[str, Any]], Any]) -> None:
    """After WAHA accepted the send: its id, the send time and any ack in the answer, in one UPDATE.

    The UPDATE commits on its own and returns the columns it may have changed (the status against the row as
    it is now), which are set on `message` so the caller reads the row as stored without loading it again.
    """
    now = utcnow()
    params: dict[str, Any] = {"message_id": message.id, "sent_at": now, "updated_at": now}
    status = _status_from_response(result.raw)
    row = None
    if result.message_id != predicted_id:
        try:
            row = execute(_sent_update(status, True), {**params, "waha_message_id": result.message_id})
        except IntegrityError:
            pass  # webhook processing already stored this WAHA id on another row; keep the predicted one
    if row is None:
        row = execute(_sent_update(status, False), params)
    if row is not None:  # None only when the row was deleted meanwhile (its session was deleted)
        for name, value in (("waha_message_id", row.waha_message_id), ("status", row.status), ("sent_at", now),
                            ("updated_at", now), ("send_state", None)):
            set_committed_value(message, name, value)


def _execute_here(stmt: Any, params: dict[str, Any]) -> Any:
    """Run one statement on the session's autocommit connection (it commits itself); its first row or None."""
    return db.session.connection().execute(stmt, params).first()


def _execute_alone(stmt: Any, params: dict[str, Any]) -> Any:
    """Run one statement as its own transaction (autocommit: no BEGIN and COMMIT round trips) after the
    caller's transaction has ended; its first row, or None when it matched nothing."""
    connection = db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        row = connection.execute(stmt, params).first()
    except BaseException:
        db.session.rollback()
        raise
    # Ends the session's (empty) transaction and hands the connection back with its isolation level reset.
    _commit_keeping_loaded_rows()
    return row


# ---------------------------------------------------------------------------------------------- reading

def get_message(tenant: Tenant, message_id: Any) -> Message:
    """One of the tenant's messages; NotFound("message_not_found") for unknown ids and other tenants' ids."""
    message = get_for_tenant(db.session, Message, tenant.id, message_id)
    if message is None:
        raise NotFound("No such message.", code="message_not_found")
    return message


def encode_cursor(message: Message) -> str:
    """Opaque cursor pointing just after `message` in (created_at, id) descending order."""
    raw = f"{message.created_at.astimezone(timezone.utc).isoformat()}|{message.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """(created_at, id) from a cursor; Invalid(field "cursor") when it was not made by encode_cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, ident = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive")
        return created_at, int(ident)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise Invalid.field("cursor", "The cursor is not valid; start again from the first page.") from None


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise Invalid.field(field, "Must be a date and time.")
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_messages(tenant: Tenant, *, session_id: str | None = None, direction: str | None = None,
                  status: str | None = None, chat_id: str | None = None, q: str | None = None,
                  since: datetime | None = None, until: datetime | None = None, cursor: str | None = None,
                  limit: int = 50) -> MessagePage:
    """A page of the tenant's messages (or one session's), newest first, with keyset pagination.

    Filters: direction ("in"/"out"), status, chat id, `q` (case-insensitive substring of the text),
    created_at in [since, until). The order is (created_at, id) descending, served by the
    (tenant, created_at, id) and (session, created_at, id) indexes, so page 1,000 costs what page 1 costs.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= PAGE_MAX:
        raise Invalid.field("limit", f"Limit must be between 1 and {PAGE_MAX}.")
    if session_id is not None:
        # The session is checked against the tenant first (another tenant's is a 404, not an empty list). Its
        # rows are then selected by session alone: adding tenant_id = ... makes PostgreSQL multiply two
        # correlated selectivities, misjudge the row count and sort instead of walking the session index.
        session = get_session(tenant, session_id)
        stmt = select(Message).where(Message.session_id == session.id)
    else:
        stmt = select(Message).where(Message.tenant_id == tenant.id)
    if direction is not None:
        if direction not in ("in", "out"):
            raise Invalid.field("direction", 'Direction must be "in" or "out".')
        stmt = stmt.where(Message.direction == direction)
    if status is not None:
        if status not in STATUS_RANK:
            raise Invalid.field("status", f"Status must be one of {', '.join(STATUS_RANK)}.")
        stmt = stmt.where(Message.status == status)
    if chat_id:
        stmt = stmt.where(Message.chat_id == chat_id)
    if q:
        if len(q) > Q_MAX:
            raise Invalid.field("q", f"The search text must be at most {Q_MAX} characters.")
        stmt = stmt.where(Message.body.ilike(_like_pattern(q), escape="\\"))
    since, until = _aware(since, "since"), _aware(until, "until")
    if since is not None:
        stmt = stmt.where(Message.created_at >= since)
    if until is not None:
        stmt = stmt.where(Message.created_at < until)
    if cursor:
        created_at, ident = decode_cursor(cursor)
        stmt = stmt.where(tuple_(Message.created_at, Message.id) < tuple_(created_at, ident))
    stmt = stmt.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)
    rows = list(db.session.scalars(stmt))
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
    return MessagePage(items=items, next_cursor=next_cursor)


def list_chats(tenant: Tenant, session_id: str, *, limit: int = 100) -> list[ChatSummary]:
    """The session's conversations, most recently active first: chat id, newest message and message count.

    One query: counts per chat come from the (session, chat, created_at, id) index, and each listed chat's
    newest message is a top-1 lookup in the same index (a window over every row was 3x slower on 100,000).
    """
    session = get_session(tenant, session_id)
    per_chat = (select(Message.chat_id.label("chat_id"), func.count().label("total"),
                       func.max(Message.created_at).label("last_at"))
                .where(Message.session_id == session.id)
                .group_by(Message.chat_id)
                .order_by(func.max(Message.created_at).desc())
                .limit(limit)
                .subquery("per_chat"))
    newest = aliased(Message)
    last_id = (select(newest.id)
               .where(newest.session_id == session.id, newest.chat_id == per_chat.c.chat_id)
               .order_by(newest.created_at.desc(), newest.id.desc())
               .limit(1)
               .scalar_subquery())
    chats = select(per_chat.c.total, per_chat.c.last_at, last_id.label("last_id")).subquery("chats")
    stmt = (select(Message, chats.c.total)
            .join(chats, Message.id == chats.c.last_id)
            .order_by(chats.c.last_at.desc(), Message.id.desc()))
    return [ChatSummary(chat_id=message.chat_id, last_message=message, count=int(total), last_at=message.created_at)
            for message, total in db.session.execute(stmt)]
