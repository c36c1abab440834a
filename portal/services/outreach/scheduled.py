"""Scheduled messages (`sendAt`): queued in the transactional lane for their time, listed, changed, cancelled.

A scheduled message is a `send_queue` row with `scheduled` set and `not_before` its time; the dispatcher is woken
at that time by a timed job (a precise wake-up), and the sweep re-drives it within seconds should that job be
lost. The time must be in the future and at most MAX_AHEAD away. With an Idempotency-Key a repeat of the same
request answers the first item (scope "message.schedule"); the same key with another request is a Conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import QueuedSend, Tenant, get_for_tenant, utcnow
from portal.pagination import id_page
from portal.services import audit, idempotency
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid, NotFound
from portal.services.messages.send_sql import _commit_keeping_loaded_rows, _statements_commit_themselves
from portal.services.messages.sending import key_used_by_a_send
from portal.services.messages.validation import _clean_text, check_caption_text
from portal.services.outreach import held_media
from portal.services.outreach.queue import _row_values, cancel, wake
from portal.services.sessions import get_session

MAX_AHEAD = timedelta(days=366)
SCOPE = idempotency.SCHEDULE_SCOPE
CURSOR_PREFIX = "q"
STATES = ("queued", "sending", "sent", "failed", "cancelled", "skipped")
UNSET: Any = object()


def check_send_at(send_at: Any, now: datetime | None = None, field: str = "sendAt") -> datetime:
    """`send_at` as UTC when it is an aware time in the future and at most MAX_AHEAD away; Invalid otherwise."""
    now = now or utcnow()
    if not isinstance(send_at, datetime) or send_at.tzinfo is None:
        raise Invalid.field(field, N_("Give the time as in RFC 3339, with an offset, e.g. 2030-05-01T12:00:00Z."))
    send_at = send_at.astimezone(UTC)
    if send_at <= now:
        raise Invalid.field(field, N_("The time to send must be in the future."))
    if send_at > now + MAX_AHEAD:
        raise Invalid.field(field, N_("The time to send must be within a year."))
    return send_at


def schedule_message(
    tenant: Tenant,
    session_id: Any,
    actor: Actor,
    *,
    to: Any,
    send_at: Any,
    text: str | None = None,
    media: dict[str, Any] | None = None,
    reply_to: int | str | None = None,
    idempotency_key: str | None = None,
) -> QueuedSend:
    """Queue a message for `send_at` (checked like a send first); audited as "message.schedule"."""
    if _statements_commit_themselves():
        _commit_keeping_loaded_rows()  # the item, its key and its audit event belong together: a transaction
    session = get_session(tenant, session_id)
    when = check_send_at(send_at)
    try:
        values = _row_values(
            tenant.id,
            session.id,
            to,
            body=text,
            media=media,
            reply_to=reply_to,
            lane="transactional",
            not_before=when,
            origin=None,
            origin_id=None,
            typing=False,
            scheduled=True,
            actor=actor,
            now=utcnow(),
        )
    except Invalid as exc:
        for item in exc.details.get("fields", []):
            if item.get("field") == "chat_id":
                item["field"] = "to"
        raise
    key = idempotency.clean_key(idempotency_key)
    fingerprint = idempotency.fingerprint(
        {
            "session": session.id,
            "to": values["chat_id"],
            "text": text,
            "media": media,
            "reply_to": reply_to,
            "send_at": when.isoformat(),
        }
    )
    if key:
        record = idempotency.lookup(tenant.id, SCOPE, key, fingerprint)
        if record is not None:
            return _remembered(tenant, record, values["chat_id"])
        if key_used_by_a_send(tenant.id, key):
            raise idempotency.reused_elsewhere()  # the key sent a message now: it cannot also schedule one
    values["media"] = held_media.hold(tenant.id, values["media"])  # the file waits in the store, not the row
    try:
        item = QueuedSend(**values)
        db.session.add(item)
        db.session.flush()
        if key:
            # the chat too: erasing the person's data finds the record by it (services.privacy.contact_erase)
            idempotency.remember(tenant.id, SCOPE, key, fingerprint, {"id": item.id, "chatId": item.chat_id}, 202)
        audit.record(
            tenant.id,
            "message.schedule",
            actor,
            target_type="queued_send",
            target_id=item.id,
            details={"session_id": session.id, "chat_id": item.chat_id, "send_at": when.isoformat()},
        )
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # a concurrent twin with the same key won; its item is the answer
        held_media.drop(values["media"])
        record = idempotency.lookup(tenant.id, SCOPE, key, fingerprint) if key else None
        if record is None:
            raise
        return _remembered(tenant, record, values["chat_id"])
    except BaseException:
        db.session.rollback()
        held_media.drop(values["media"])
        raise
    wake(session.id, when)
    return item


def _remembered(tenant: Tenant, record: Any, chat_id: str) -> QueuedSend:
    """The scheduled message a repeated key answers with. A record that outlived its message (erased with the
    contact's data) answers NotFound, never another row that took the same id meanwhile."""
    item = get_scheduled(tenant, (record.response or {}).get("id"))
    if item.chat_id != chat_id:
        raise NotFound(N_("No such scheduled message."), code="scheduled_message_not_found")
    return item


def get_scheduled(tenant: Tenant, item_id: Any) -> QueuedSend:
    """One of the tenant's scheduled messages; NotFound("scheduled_message_not_found") otherwise."""
    item = get_for_tenant(db.session, QueuedSend, tenant.id, item_id)
    if item is None or not item.scheduled:
        raise NotFound(N_("No such scheduled message."), code="scheduled_message_not_found")
    return item


@dataclass
class ScheduledPage:
    items: list[QueuedSend]
    next_cursor: str | None


def list_scheduled(
    tenant: Tenant,
    *,
    session_id: str | None = None,
    state: str | None = None,
    chat_id: str | None = None,
    late: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> ScheduledPage:
    """The tenant's scheduled messages, newest first, in keyset pages; filters by session, state, chat, late and
    the time to send (since inclusive, until exclusive). A session that is not the tenant's is NotFound
    ("session_not_found"), as the other lists answer it."""
    stmt = QueuedSend.scoped(tenant.id).where(QueuedSend.scheduled.is_(True))
    if session_id:
        stmt = stmt.where(QueuedSend.session_id == get_session(tenant, session_id).id)
    if state:
        if state not in STATES:
            raise Invalid.field("state", N_f("State must be one of %(value)s.", value=", ".join(STATES)))
        stmt = stmt.where(QueuedSend.state == state)
    if chat_id:
        stmt = stmt.where(QueuedSend.chat_id == chat_id)
    if late is not None:
        stmt = stmt.where(QueuedSend.late.is_(late))
    if since:
        stmt = stmt.where(QueuedSend.not_before >= since)
    if until:
        stmt = stmt.where(QueuedSend.not_before < until)
    items, next_cursor = id_page(db.session, stmt, QueuedSend.id, cursor, CURSOR_PREFIX, limit)
    return ScheduledPage(items, next_cursor)


def update_scheduled(
    tenant: Tenant, item_id: Any, actor: Actor, *, send_at: Any = UNSET, text: Any = UNSET
) -> QueuedSend:
    """Move a scheduled message to another time and/or change its text, while it is still queued (Conflict
    "not_editable" afterwards); audited as "message.schedule_update"."""
    item = get_scheduled(tenant, item_id)
    db.session.refresh(item, with_for_update=True)
    if item.state != "queued":
        db.session.rollback()
        raise Conflict(
            N_f("This message is %(state)s and can no longer be changed.", state=item.state),
            code="not_editable",
            details={"state": item.state},
        )
    changes: dict[str, Any] = {}
    if send_at is not UNSET:
        item.not_before = check_send_at(send_at)
        item.late, item.hold_reason = False, None
        changes["send_at"] = item.not_before.isoformat()
    if text is not UNSET:
        cleaned = _clean_text(text)
        if cleaned is None and item.media is None:
            raise Invalid.field("text", N_("Give a text or a media file to send."))
        if item.media is not None:
            check_caption_text(item.media.get("kind"), cleaned)  # the file's caption: refused now, not at send
            if item.media.get("caption") is not None:
                # given as the file's own caption: the change replaces that caption (a body beside it is not sent)
                item.media, cleaned = {**item.media, "caption": cleaned}, None
        item.body = cleaned
        changes["text"] = True
    item.updated_at = utcnow()
    audit.record(
        tenant.id, "message.schedule_update", actor, target_type="queued_send", target_id=item.id, details=changes
    )
    db.session.commit()
    wake(item.session_id, item.not_before)
    return item


def cancel_scheduled(tenant: Tenant, item_id: Any, actor: Actor) -> QueuedSend:
    """Cancel a scheduled message that is still queued (Conflict "not_cancellable" otherwise)."""
    get_scheduled(tenant, item_id)
    return cancel(tenant, item_id, actor)


__all__ = [
    "MAX_AHEAD",
    "ScheduledPage",
    "cancel_scheduled",
    "check_send_at",
    "get_scheduled",
    "list_scheduled",
    "schedule_message",
    "update_scheduled",
]
