"""The hand-tuned SQL of the send path: the session lookup, the row and its audit event in one statement, and
the UPDATE after WAHA accepted.

A send is the API's hot path: these statements are built once with bound parameters, read only the columns the
send needs, and (on PostgreSQL, when the API asks for autocommit) run as single self-committing statements, so a
send costs few round trips and little CPU. `sending` decides what happens; this module only writes it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    select,
    type_coerce,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from portal import rawsql
from portal.dbengines import autocommit_active
from portal.extensions import db
from portal.i18n import N_
from portal.models import (
    ACK_NAMES,
    STATUS_RANK,
    AuditEvent,
    Chat,
    Contact,
    Message,
    OptOut,
    Tenant,
    WahaServer,
    WahaSession,
    utcnow,
)
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import NotFound
from portal.services.inbox.upkeep import chat_conflict, frozen, known_chat, preview_of, upsert_sent_chat


@dataclass(frozen=True)
class _SendTarget:
    """What a send needs of its session (the WAHA name, the status, the server to call) and what the portal
    knows of the recipient: whether the session already has a chat with it, and WhatsApp's last answer about
    the number (services.contacts decides from these whether to ask WAHA before the first send)."""

    id: str
    status: str
    external_name: str
    server: WahaServer
    chat_known: bool = False
    wa_exists: bool | None = None
    exists_checked_at: datetime | None = None
    opted_out: bool = False  # the recipient is on the tenant's opt-out list (services.optouts)
    # WhatsApp refuses messages to new contacts until then (services.number_health); None when it does not
    new_contacts_blocked_until: datetime | None = None


_CHAT_ID = bindparam("chat_id", type_=Chat.chat_id.type)

# The session's columns the send reads, its server's address and key, and the recipient's chat and contact,
# tenant-scoped, in one round trip: loading the whole rows (JSON columns, the session's encrypted HMAC key)
# through the ORM costs more CPU than the query. Built once for the same reason as the statements below.
_SESSION_FOR_SEND = (
    select(
        WahaSession.id,
        WahaSession.status,
        WahaSession.external_name,
        WahaSession.new_contacts_blocked_until,
        WahaServer.base_url,
        type_coerce(WahaServer.api_key, Text).label("stored_api_key"),
        select(Chat.id).where(*known_chat(WahaSession.id, _CHAT_ID)).exists().label("chat_known"),
        Contact.wa_exists,
        Contact.exists_checked_at,
        select(OptOut.id)
        .where(OptOut.tenant_id == WahaSession.tenant_id, OptOut.chat_id == _CHAT_ID)
        .exists()
        .label("opted_out"),
    )
    .join(WahaServer, WahaServer.id == WahaSession.server_id)
    .outerjoin(Contact, and_(Contact.tenant_id == WahaSession.tenant_id, Contact.chat_id == _CHAT_ID))
    .where(
        WahaSession.id == bindparam("session_id", type_=WahaSession.id.type),
        WahaSession.tenant_id == bindparam("tenant_id", type_=WahaSession.tenant_id.type),
    )
)


_SESSION_FOR_SEND_RAW = rawsql.RawStatement(_SESSION_FOR_SEND)


def _first_row(raw: rawsql.RawStatement, params: dict[str, Any]) -> Any:
    """The first row of `raw` run on the session's connection (by psycopg itself on PostgreSQL), or None."""
    return rawsql.first(raw, db.session.connection(), params)


def _session_for_send(tenant: Tenant, session_id: Any, chat_id: str = "") -> _SendTarget:
    """The tenant's session to send through, with what is known of `chat_id`; NotFound("session_not_found") as
    get_session() answers."""
    row = (
        _first_row(_SESSION_FOR_SEND_RAW, {"session_id": str(session_id), "tenant_id": tenant.id, "chat_id": chat_id})
        if session_id
        else None
    )
    if row is None:
        raise NotFound(N_("No such session."), code="session_not_found")
    sid, status, name, blocked_until, base_url, stored_api_key, chat_known, wa_exists, checked_at, opted_out = row
    # servers.client_for() needs only the server's address and key; an unattached row object carries them.
    server = WahaServer(base_url=base_url, api_key=_open_api_key(stored_api_key))
    return _SendTarget(
        sid, status, name, server, bool(chat_known), wa_exists, checked_at, bool(opted_out), blocked_until
    )


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


def _statements_commit_themselves() -> bool:
    """True when the session's connection runs each statement as its own transaction (autocommit).

    The API's send endpoints ask for this (`api_route(..., autocommit=True)`, PostgreSQL only): the send then
    needs no BEGIN and COMMIT round trips and keeps one pooled connection from authentication to the answer,
    because each of its writes on the way is a single statement that commits itself.
    """
    return autocommit_active(db.session())


def _new_row(**values: Any) -> Message:
    """A new Message stamped now (the audit event of the send carries the same time)."""
    now = utcnow()
    return Message(**{"created_at": now, "updated_at": now, **values})


# What a send writes into a new message row.
_SEND_COLUMNS = (
    "tenant_id",
    "session_id",
    "direction",
    "source",
    "waha_message_id",
    "chat_id",
    "from_me",
    "body",
    "media",
    "status",
    "idempotency_key",
    "extra",
    "send_state",
    "reply_to_id",
    "created_at",
    "updated_at",
)


# Those other columns, when the database fills them with NULL (no default of either side).
_UNSET_COLUMNS = tuple(
    attr.key
    for attr in sa_inspect(Message).column_attrs
    if attr.key not in _SEND_COLUMNS
    and not attr.columns[0].primary_key
    and attr.columns[0].default is None
    and attr.columns[0].server_default is None
)


@functools.cache
def _insert_with_audit_statement() -> rawsql.RawStatement:
    """The message and its "message.send" audit event in one statement (PostgreSQL: a data-modifying CTE).

    Built once with bound parameters, and frozen into text: constructing it per send would cost more CPU than
    the round trip it saves (SQLAlchemy keys its statement cache by a walk of the whole statement), and the
    chat's upsert could not be cached at all (see `frozen`).
    """
    sent = (
        insert(Message)
        .values(
            {getattr(Message, key): bindparam(f"m_{key}", type_=getattr(Message, key).type) for key in _SEND_COLUMNS}
        )
        .returning(Message.id)
        .cte("sent")
    )
    # The columns audit.record() fills, with the message id taken from the row just inserted.
    event: dict[InstrumentedAttribute[Any], ColumnElement[Any]] = {
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
            literal("session_id", String),
            bindparam("a_session_id", type_=String),
            literal("message_id", String),
            sent.c.id,
            literal("chat_id", String),
            bindparam("a_chat_id", type_=String),
            literal("kind", String),
            bindparam("a_kind", type_=String),
        ),
        AuditEvent.created_at: bindparam("a_created_at", type_=AuditEvent.created_at.type),
    }
    logged = insert(AuditEvent).from_select(list(event), select(*event.values()).select_from(sent)).cte("logged")
    # The chat of the message shows it as its last message (services.inbox.upkeep: the same upsert as events).
    chat: dict[Any, Any] = {
        Chat.tenant_id: bindparam("m_tenant_id", type_=Integer),
        Chat.session_id: bindparam("m_session_id", type_=Message.session_id.type),
        Chat.chat_id: bindparam("m_chat_id", type_=Message.chat_id.type),
        Chat.last_message_id: sent.c.id,
        Chat.last_activity_at: bindparam("m_created_at", type_=Message.created_at.type),
        Chat.last_preview: bindparam("c_preview", type_=String),
        Chat.last_kind: bindparam("c_kind", type_=String),
        Chat.last_from_me: literal(True, Boolean),
        Chat.last_status: bindparam("m_status", type_=String),
        Chat.unread_count: literal(0, Integer),
        Chat.status: literal("open", String),
        Chat.created_at: bindparam("m_created_at", type_=Message.created_at.type),
        Chat.updated_at: bindparam("m_created_at", type_=Message.created_at.type),
    }
    chatted = chat_conflict(
        postgresql.insert(Chat).from_select(list(chat), select(*chat.values()).select_from(sent)), reopen=False
    ).cte("chatted")
    statement = select(sent.c.id).add_cte(logged).add_cte(chatted)
    return rawsql.RawStatement(frozen(statement, list(statement.selected_columns)))


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
        audit.record(
            message.tenant_id, "message.send", actor, target_type="message", target_id=message.id, details=details
        )
        upsert_sent_chat(message)
        db.session.flush()
        return
    params = {f"m_{key}": getattr(message, key) for key in _SEND_COLUMNS}
    params["c_kind"], params["c_preview"] = preview_of(message)
    params.update(
        a_tenant_id=message.tenant_id,
        a_actor_type=actor.type,
        a_actor_id=actor.id,
        a_actor_label=actor.label,
        a_ip=actor.ip,
        a_request_id=actor.request_id,
        a_session_id=details["session_id"],
        a_chat_id=details["chat_id"],
        a_kind=details["kind"],
        a_created_at=message.created_at,
    )
    message.id = _first_row(_insert_with_audit_statement(), params)[0]
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
def _sent_update(status: str | None, with_waha_id: bool, by_month: bool = False) -> rawsql.RawStatement:
    """The UPDATE after WAHA accepted a send (one per ack status and id case, built once: see above).

    `by_month` (PostgreSQL, where messages is partitioned by created_at) adds the row's created_at to the id, so
    the UPDATE reads the one partition holding the row instead of probing each month's primary key. On PostgreSQL,
    when WAHA kept the id the row already carries (`with_waha_id` False, the usual case), the UPDATE also commits
    without waiting for its WAL record to reach the disk (`synchronous_commit` off for its own transaction, set by
    the statement itself): it runs as a transaction of its own (`_execute_here`, `_execute_alone`), and what it
    records is safe to lose in a database crash. The row was committed durably before WAHA was called; losing the
    UPDATE leaves it "sending", which the reconcile job settles by asking WAHA (services.outbox), and a retry with
    the same Idempotency-Key sends under the same WhatsApp id, which WAHA deduplicates. An UPDATE that stores
    another id from WAHA waits for the disk as before: acks find the row by that id. The usual send's answer no
    longer waits for a second disk flush."""
    values: dict[Any, Any] = {
        Message.sent_at: bindparam("sent_at", type_=Message.sent_at.type),
        Message.updated_at: bindparam("updated_at", type_=Message.updated_at.type),
        Message.send_state: None,
    }
    if status:
        # Acks may have moved the row forward over the webhook meanwhile: the status only moves up the ladder.
        lower = [name for name, rank in STATUS_RANK.items() if rank < STATUS_RANK[status] and name != "ERROR"]
        # the names as literals, not one expanding list: the statement is compiled once for rawsql
        values[Message.status] = case(
            (Message.status.in_([literal(name, String) for name in lower]), status), else_=Message.status
        )
    if with_waha_id:
        values[Message.waha_message_id] = bindparam("waha_message_id", type_=Message.waha_message_id.type)
    stmt = update(Message).where(Message.id == bindparam("message_id", type_=Message.id.type))
    if by_month:
        stmt = stmt.where(Message.created_at == bindparam("row_created_at", type_=Message.created_at.type))
    if by_month and not with_waha_id:
        # set_config(..., true) lasts until this statement's transaction ends, and the setting counts at its commit
        relaxed = select(func.set_config("synchronous_commit", "off", True).label("setting")).subquery("relaxed")
        stmt = stmt.where(relaxed.c.setting == literal("off", String))
    return rawsql.RawStatement(stmt.values(values).returning(Message.waha_message_id, Message.status))


def _record_sent(
    message: Message, predicted_id: str, result: Any, execute: Callable[[Any, dict[str, Any]], Any]
) -> None:
    """After WAHA accepted the send: its id, the send time and any ack in the answer, in one UPDATE.

    The UPDATE commits on its own and returns the columns it may have changed (the status against the row as
    it is now), which are set on `message` so the caller reads the row as stored without loading it again.
    """
    now = utcnow()
    params: dict[str, Any] = {"message_id": message.id, "sent_at": now, "updated_at": now}
    by_month = db.session.get_bind().dialect.name == "postgresql"
    if by_month:
        params["row_created_at"] = message.created_at  # set at insert, never changed: the row's partition
    status = _status_from_response(result.raw)
    row = None
    if result.message_id != predicted_id:
        try:
            row = execute(_sent_update(status, True, by_month), {**params, "waha_message_id": result.message_id})
        except IntegrityError:
            pass  # webhook processing already stored this WAHA id on another row; keep the predicted one
    if row is None:
        row = execute(_sent_update(status, False, by_month), params)
    if row is not None:  # None only when the row was deleted meanwhile (its session was deleted)
        waha_message_id, stored_status = row
        for name, value in (
            ("waha_message_id", waha_message_id),
            ("status", stored_status),
            ("sent_at", now),
            ("updated_at", now),
            ("send_state", None),
        ):
            set_committed_value(message, name, value)


def _execute_here(raw: rawsql.RawStatement, params: dict[str, Any]) -> Any:
    """Run one statement on the session's autocommit connection (it commits itself); its first row or None."""
    return _first_row(raw, params)


def _execute_alone(raw: rawsql.RawStatement, params: dict[str, Any]) -> Any:
    """Run one statement as its own transaction (autocommit: no BEGIN and COMMIT round trips) after the
    caller's transaction has ended; its first row, or None when it matched nothing."""
    connection = db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        row = rawsql.first(raw, connection, params)
    except BaseException:
        db.session.rollback()
        raise
    # Ends the session's (empty) transaction and hands the connection back with its isolation level reset.
    _commit_keeping_loaded_rows()
    return row
