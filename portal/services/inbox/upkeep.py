"""Keeping `chats` and `contacts` up to date while events are processed and messages are sent.

Event processing (`services.events`) hands every message of a batch to a `ChatUpkeep` (`touch` for message
events, `change` for acks, edits and revokes) and calls `flush()` once the batch's new messages have their ids:
then one upsert writes every contact the batch heard from and one writes every chat with a new message (ON
CONFLICT, one row per chat whatever the number of its events), and one UPDATE refreshes the preview of chats whose
last message changed. The send path writes its chat in the same statement as the message (`send_sql`); on SQLite
`upsert_sent_chat` does it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from portal.extensions import db
from portal.models import Chat, Contact, Message, utcnow
from portal.models.inbox import PREVIEW_MAX
from portal.services.media import media_kind
from portal.services.recipients import is_person, phone_of

# Chats that are not conversations: WhatsApp status updates.
SKIPPED_CHATS = ("status@broadcast",)


def known_chat(session_id: Any, chat_id: Any) -> tuple[Any, ...]:
    """The conditions under which the session already has a chat with `chat_id` (a chat whose last message failed,
    e.g. the number was never checked because WAHA was down, proves nothing): the send path's new-contact checks
    and the send queue's new-contact gate share them. Columns or bound values both fit."""
    return (Chat.session_id == session_id, Chat.chat_id == chat_id, Chat.last_status.is_distinct_from("ERROR"))


def preview_of(message: Message) -> tuple[str, str | None]:
    """(kind, text) of the preview line: what the message is and its text or caption, cut to PREVIEW_MAX."""
    if message.revoked_at is not None:
        return "revoked", None
    media = message.media if isinstance(message.media, dict) else None
    # what WAHA told of a received or phone-sent message (a portal send's extra is the sender's own metadata)
    waha = (message.extra or {}).get("waha") if message.source in ("inbound", "app") else None
    waha = waha if isinstance(waha, dict) else {}
    if media:
        kind = media.get("kind") or media_kind(media.get("mimetype"))
        text = message.body or media.get("caption")
    elif waha.get("location"):
        kind, text = "location", message.body or waha["location"].get("name")
    elif waha.get("vcards"):
        kind, text = "vcard", message.body
    else:
        kind, text = "text", message.body
    return kind, (text[:PREVIEW_MAX] if isinstance(text, str) else None)


def push_name_of(payload: dict[str, Any]) -> str | None:
    """The sender's WhatsApp name where the engine gives it: WEBJS `_data.notifyName`, NOWEB `pushName`, GOWS
    `_data.Info.PushName`."""
    data: dict[str, Any] = payload.get("_data") or {}
    data = data if isinstance(data, dict) else {}
    info: dict[str, Any] = data.get("Info") or {}
    info = info if isinstance(info, dict) else {}
    for value in (data.get("notifyName"), data.get("pushName"), info.get("PushName"), payload.get("pushName")):
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    return None


@dataclass
class _Touch:
    tenant_id: int
    session_id: str
    chat_id: str
    at: datetime
    message: Message | None = None  # the newest message new in this batch (None: the chat row is left alone)
    message_at: datetime | None = None
    unread: int = 0
    inbound: bool = False
    push_name: str | None = None


class ChatUpkeep:
    """What one processing batch does to chats and contacts, written by `flush()` in three statements at most.

    Calls are logged and folded together at `flush()`, so the part of a failed event can be dropped again
    (`mark` before it, `undo` after it failed).
    """

    def __init__(self) -> None:
        self._log: list[tuple[Message, datetime | None, bool, str | None]] = []

    def touch(self, message: Message, at: datetime, *, new: bool, push_name: str | None = None) -> None:
        """A message event: `new` when this batch stored the message (or filled a placeholder)."""
        if message.chat_id not in SKIPPED_CHATS:
            self._log.append((message, at, new, push_name))

    def change(self, message: Message) -> None:
        """An ack, edit or revoke of `message`: the preview of the chat it is the last message of follows."""
        self._log.append((message, None, False, None))

    def mark(self) -> int:
        return len(self._log)

    def undo(self, mark: int) -> None:
        del self._log[mark:]

    def _fold(self) -> tuple[dict[tuple[str, str], _Touch], dict[int, Message]]:
        touches: dict[tuple[str, str], _Touch] = {}
        changed: dict[int, Message] = {}
        for message, at, new, push_name in self._log:
            if at is None or not new:
                changed[id(message)] = message
            if at is None:
                continue
            key = (message.session_id, message.chat_id)
            touch = touches.get(key)
            if touch is None:
                touch = touches[key] = _Touch(message.tenant_id, message.session_id, message.chat_id, at)
            touch.at = max(touch.at, at)
            if push_name and not message.from_me:
                touch.push_name = push_name
            if not new:
                continue
            if touch.message_at is None or at >= touch.message_at:
                touch.message, touch.message_at = message, at
            if not message.from_me:
                touch.unread += 1
                touch.inbound = True
        return touches, changed

    def flush(self) -> None:
        """Write the batch's contacts and chats (call after the new messages have their ids)."""
        touches, changed = self._fold()
        self._log.clear()
        names = _upsert_contacts([t for t in touches.values() if is_person(t.chat_id)])
        chats = [t for t in touches.values() if t.message is not None]
        if chats:
            _upsert_chats(chats, names)
        latest = {id(t.message) for t in chats}
        refresh_previews([m for key, m in changed.items() if key not in latest and m.id is not None])


def insert_for(model: Any) -> Any:
    """An INSERT of `model` that takes ON CONFLICT clauses, for the dialect of the session (PostgreSQL or SQLite)."""
    dialect = db.session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def _earlier(column: Any, new: Any) -> Any:
    return sa.case((sa.or_(column.is_(None), new < column), new), else_=column)


def _later(column: Any, new: Any) -> Any:
    return sa.case((sa.or_(column.is_(None), new > column), new), else_=column)


def _contact_conflict(stmt: Any) -> Any:
    """`stmt` (an INSERT into contacts) made an upsert: the push name, the first and last message and the proof
    of being on WhatsApp (an inbound message) are merged into the stored row."""
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[Contact.tenant_id, Contact.chat_id],
        set_={
            "push_name": sa.func.coalesce(new.push_name, Contact.push_name),
            "first_message_at": _earlier(Contact.first_message_at, new.first_message_at),
            "last_message_at": _later(Contact.last_message_at, new.last_message_at),
            "wa_exists": sa.case((new.wa_exists.is_(True), True), else_=Contact.wa_exists),
            "exists_checked_at": sa.case(
                (new.wa_exists.is_(True), new.exists_checked_at), else_=Contact.exists_checked_at
            ),
            "updated_at": new.updated_at,
        },
    )


def _upsert_contacts(touches: list[_Touch]) -> dict[tuple[int, str], str | None]:
    """One upsert for the batch's people; returns (tenant, chat id) -> their name by the display rule's first
    two steps (saved name, else push name)."""
    if not touches:
        return {}
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "tenant_id": t.tenant_id,
            "chat_id": t.chat_id,
            "phone": phone_of(t.chat_id),
            "lid": t.chat_id if t.chat_id.endswith("@lid") else None,
            "push_name": t.push_name,
            "first_message_at": t.at,
            "last_message_at": t.at,
            # they wrote to us: the number is on WhatsApp
            "wa_exists": True if t.inbound else None,
            "exists_checked_at": t.at if t.inbound else None,
            "created_at": now,
            "updated_at": now,
        }
        for t in _unique(touches, lambda t: (t.tenant_id, t.chat_id))
    ]
    returning = ("tenant_id", "chat_id", "saved_name", "push_name")
    result = _bulk_upsert(Contact, rows, "contacts", returning, tags=[])
    return {(r.tenant_id, r.chat_id): r.saved_name or r.push_name for r in result}


def _conflict_of(kind: str) -> Any:
    return {"contacts": _contact_conflict, "chats": lambda stmt: chat_conflict(stmt, reopen=True)}[kind]


@functools.cache
def _recordset_upsert(model: Any, columns: tuple[str, ...], kind: str, returning: tuple[str, ...]) -> Any:
    """INSERT ... SELECT FROM jsonb_to_recordset(:rows) ON CONFLICT ... (PostgreSQL), built once per shape: the
    batch's rows travel as one JSON document, which PostgreSQL takes apart in C (binding one array per column
    cost the worker more CPU than the rest of the upkeep), and the statement text is the same for every batch."""
    table = model.__table__
    rows = (
        sa.func.jsonb_to_recordset(sa.cast(sa.bindparam("rows", type_=sa.Text), postgresql.JSONB))
        .table_valued(*[sa.column(c, table.c[c].type) for c in columns])
        .render_derived("v", with_types=True)
    )
    values: list[Any] = [rows.c[c] for c in columns]
    names = list(columns)
    if "tags" in table.c and "tags" not in columns:
        values.append(sa.cast(sa.literal("[]"), postgresql.JSONB))
        names.append("tags")
    stmt = _conflict_of(kind)(postgresql.insert(table).from_select(names, sa.select(*values).select_from(rows)))
    returned = [table.c[c] for c in returning]
    return frozen(stmt.returning(*returned) if returned else stmt, returned)


def frozen(stmt: Any, columns: list[Any]) -> Any:
    """`stmt` compiled once for PostgreSQL and kept as text with typed bind parameters (`columns`: what it
    returns).

    PostgreSQL's INSERT ... ON CONFLICT has no SQLAlchemy cache key, so a statement holding one would be compiled
    again on every execution (milliseconds of CPU per send); its text is compiled exactly once.
    """
    compiled = stmt.compile(dialect=postgresql.dialect(paramstyle="named"))
    # text() takes ":x::JSONB" for a name followed by a colon: a space keeps the cast and frees the name
    sql = re.sub(r"(:\w+)::", r"\1 ::", str(compiled))
    names: dict[str, Any] = {}
    for bind, name in compiled.bind_names.items():
        names.setdefault(name, bind)
    binds = [
        sa.bindparam(name, value=bind.value, type_=bind.type)
        if bind.value is not None
        else sa.bindparam(name, type_=bind.type)
        for name, bind in names.items()
    ]
    statement = sa.text(sql).bindparams(*binds)
    return statement.columns(*[sa.column(c.key, c.type) for c in columns]) if columns else statement


def _bulk_upsert(model: Any, rows: list[dict[str, Any]], kind: str, returning: tuple[str, ...], **same: Any) -> Any:
    """Upsert `rows` (dicts with the same keys; `same` holds values equal for every row) in one statement."""
    if db.session.get_bind().dialect.name == "postgresql":
        columns = tuple(rows[0])
        document = json.dumps(rows, default=_iso, separators=(",", ":"))  # C encoder; only datetimes call _iso
        return db.session.execute(_recordset_upsert(model, columns, kind, returning), {"rows": document})
    stmt = _conflict_of(kind)(insert_for(model))
    if returning:
        stmt = stmt.returning(*[model.__table__.c[c] for c in returning])
    return db.session.execute(stmt, [{**row, **same} for row in rows])


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _unique(touches: list[_Touch], key: Any) -> list[_Touch]:
    """One touch per key (a tenant's person may write to two of its sessions in one batch), the latest wins."""
    merged: dict[Any, _Touch] = {}
    for touch in touches:
        seen = merged.get(key(touch))
        if seen is None:
            merged[key(touch)] = _Touch(**{**touch.__dict__})
        else:
            seen.at = max(seen.at, touch.at)
            seen.inbound = seen.inbound or touch.inbound
            seen.push_name = touch.push_name or seen.push_name
    return list(merged.values())


def _chat_row(touch: _Touch, message: Message, name: str | None, now: datetime) -> dict[str, Any]:
    kind, text = preview_of(message)
    return {
        "tenant_id": touch.tenant_id,
        "session_id": touch.session_id,
        "chat_id": touch.chat_id,
        "name": name,
        "last_message_id": message.id,
        "last_activity_at": touch.message_at,
        "last_preview": text,
        "last_kind": kind,
        "last_from_me": bool(message.from_me),
        "last_status": message.status,
        "unread_count": touch.unread,
        "status": "open",
        "created_at": now,
        "updated_at": now,
    }


def chat_conflict(stmt: Any, *, reopen: bool) -> Any:
    """`stmt` (an INSERT into chats) made an upsert: the last message moves only forward in time; `reopen` adds
    the unread increment and reopens a resolved chat when new inbound messages came (event processing)."""
    new = stmt.excluded
    newer = new.last_activity_at >= Chat.last_activity_at

    def forward(column: str) -> Any:
        return sa.case((newer, getattr(new, column)), else_=getattr(Chat, column))

    values: dict[str, Any] = {
        c: forward(c)
        for c in ("last_message_id", "last_preview", "last_kind", "last_from_me", "last_status", "last_activity_at")
    }
    values["name"] = sa.func.coalesce(new.name, Chat.name)
    values["updated_at"] = new.updated_at
    if reopen:
        values["unread_count"] = Chat.unread_count + new.unread_count
        values["status"] = sa.case((new.unread_count > 0, "open"), else_=Chat.status)
        values["resolved_at"] = sa.case((new.unread_count > 0, None), else_=Chat.resolved_at)
    return stmt.on_conflict_do_update(index_elements=[Chat.session_id, Chat.chat_id], set_=values)


def _upsert_chats(touches: list[_Touch], names: dict[tuple[int, str], str | None]) -> None:
    now = utcnow()
    rows = []
    for touch in touches:
        assert touch.message is not None
        rows.append(_chat_row(touch, touch.message, names.get((touch.tenant_id, touch.chat_id)), now))
    _bulk_upsert(Chat, rows, "chats", ())


def upsert_sent_chat(message: Message) -> None:
    """The chat of a message the portal is sending (the send path on SQLite; PostgreSQL does it in the message's
    own INSERT, see send_sql)."""
    if message.chat_id in SKIPPED_CHATS:
        return
    touch = _Touch(message.tenant_id, message.session_id, message.chat_id, message.created_at, message=message)
    touch.message_at = message.created_at
    db.session.execute(
        chat_conflict(insert_for(Chat), reopen=False), [_chat_row(touch, message, None, message.created_at)]
    )


def refresh_previews(messages: list[Message]) -> None:
    """Bring the preview (tick, text, kind) of each chat whose last message is one of `messages` up to date."""
    if not messages:
        return
    rows = []
    for message in messages:
        kind, text = preview_of(message)
        rows.append({"id": message.id, "status": message.status, "preview": text, "kind": kind})
    now = utcnow()
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            sa.text(
                "UPDATE chats SET last_status = v.status, last_preview = v.preview, last_kind = v.kind, "
                "updated_at = :now FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS varchar[]), "
                "CAST(:previews AS varchar[]), CAST(:kinds AS varchar[])) AS v(id, status, preview, kind) "
                "WHERE chats.last_message_id = v.id AND (chats.last_status, chats.last_preview, chats.last_kind) "
                "IS DISTINCT FROM (v.status, v.preview, v.kind)"
            ),
            {
                "ids": [r["id"] for r in rows],
                "statuses": [r["status"] for r in rows],
                "previews": [r["preview"] for r in rows],
                "kinds": [r["kind"] for r in rows],
                "now": now,
            },
        )
        return
    stmt = (
        sa.update(Chat)
        .where(Chat.last_message_id == sa.bindparam("m_id"))
        .values(
            last_status=sa.bindparam("m_status"),
            last_preview=sa.bindparam("m_preview"),
            last_kind=sa.bindparam("m_kind"),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.connection().execute(stmt, [{f"m_{k}": v for k, v in row.items()} for row in rows])
