"""Putting messages on a session's send queue and managing it: enqueue (one or many), cancel one, pause and
resume a session's queue, clear its campaign traffic, and waking the session's dispatcher.

Every change commits its own transaction and writes the audit log; the dispatcher (`dispatch`) is woken after
the commit: at once for due items, at the item's time for a later one (a timed job, so a scheduled message is
sent on time without a sweep). The periodic sweep re-drives whatever a lost wake-up left behind.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import insert, select, update

from portal import queue as jobs
from portal.extensions import db, redis_store
from portal.i18n import N_, N_f
from portal.models import QueuedSend, SendQueueSession, Tenant, WahaSession, get_for_tenant, rowcount, utcnow
from portal.models.outreach import LANES
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid, NotFound
from portal.services.messages.validation import _clean_text, check_caption_text, clean_media, normalize_recipient
from portal.services.outreach.rules import settled
from portal.services.sessions import get_session

log = logging.getLogger(__name__)

LOCK_KEY = "sendq:lock:"  # the session's running dispatcher (its token), while it runs
POKE_KEY = "sendq:poke:"  # a list the running dispatcher naps on: a push wakes it to plan again
ORIGIN_MAX = 32
BULK_MAX = 10_000  # items per enqueue_many call


def _aware(value: Any, field: str = "not_before") -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise Invalid.field(field, N_("Give a date and time with its UTC offset."))
    return value.astimezone(UTC)


def _check_content(body: Any, media: Any) -> tuple[str | None, dict[str, Any] | None]:
    """The text and media of a queued send, checked as a send checks them (the media as given, for the send)."""
    text = _clean_text(body)
    if media is not None:
        kind, _file, _stored, caption = clean_media(media)
        if caption is None:
            check_caption_text(kind, text)  # the text becomes the file's caption, under a caption's rules
    elif text is None:
        raise Invalid.field("text", N_("Give a text or a media file to send."))
    return text, media


def _row_values(
    tenant_id: int,
    session_id: str,
    chat_id: Any,
    *,
    body: Any,
    media: Any,
    reply_to: Any,
    lane: str,
    not_before: Any,
    origin: Any,
    origin_id: Any,
    typing: bool,
    scheduled: bool,
    actor: Actor,
    now: datetime,
) -> dict[str, Any]:
    if lane not in LANES:
        raise Invalid.field("lane", N_f("Lane must be one of %(value)s.", value=", ".join(LANES)))
    try:
        chat = normalize_recipient(chat_id)
    except Invalid as exc:
        raise Invalid.field("chat_id", exc.message) from None
    text, media = _check_content(body, media)
    if origin is not None and (not isinstance(origin, str) or len(origin) > ORIGIN_MAX):
        raise Invalid.field("origin", N_f("Origin must be at most %(ORIGIN_MAX)s characters.", ORIGIN_MAX=ORIGIN_MAX))
    if reply_to is not None and (not isinstance(reply_to, (str, int)) or isinstance(reply_to, bool)):
        raise Invalid.field("reply_to", N_("Reply to a message of this chat: give its id."))
    return {
        "tenant_id": tenant_id,
        "session_id": session_id,
        "lane": lane,
        "state": "queued",
        "chat_id": chat,
        "body": text,
        "media": media,
        "reply_to": None if reply_to is None else str(reply_to),
        "not_before": _aware(not_before),
        "scheduled": scheduled,
        "late": False,
        "origin": origin,
        "origin_id": origin_id,
        "typing": bool(typing),
        "attempts": 0,
        "created_by_type": actor.type,
        "created_by_id": actor.id,
        "created_by_label": actor.label,
        "created_at": now,
        "updated_at": now,
    }


def enqueue(
    tenant: Tenant,
    session_id: Any,
    chat_id: Any,
    *,
    body: str | None = None,
    media: dict[str, Any] | None = None,
    reply_to: int | str | None = None,
    lane: str = "transactional",
    not_before: datetime | None = None,
    origin: str | None = None,
    origin_id: int | None = None,
    typing: bool = False,
    scheduled: bool = False,
    actor: Actor,
) -> QueuedSend:
    """Queue one message (checked like a send; NotFound for another tenant's session), commit, wake the
    session's dispatcher (at `not_before` when that is later). Audited as "outreach.enqueue"."""
    session = get_session(tenant, session_id)
    values = _row_values(
        tenant.id,
        session.id,
        chat_id,
        body=body,
        media=media,
        reply_to=reply_to,
        lane=lane,
        not_before=not_before,
        origin=origin,
        origin_id=origin_id,
        typing=typing,
        scheduled=scheduled,
        actor=actor,
        now=utcnow(),
    )
    item = QueuedSend(**values)
    db.session.add(item)
    db.session.flush()
    details = {"session_id": session.id, "chat_id": item.chat_id, "lane": lane, "scheduled": scheduled}
    if item.not_before is not None:
        details["not_before"] = item.not_before.isoformat()
    audit.record(tenant.id, "outreach.enqueue", actor, target_type="queued_send", target_id=item.id, details=details)
    db.session.commit()
    wake(session.id, item.not_before)
    return item


def enqueue_many(tenant: Tenant, items: list[dict[str, Any]], *, actor: Actor) -> int:
    """Queue many messages in one transaction (campaigns); each dict takes enqueue's keyword names plus
    `session_id` and `chat_id`. All are checked first: one bad item refuses the whole batch (Invalid naming the
    item's index), nothing written. Audited once as "outreach.enqueue_many". Returns how many were queued."""
    if not isinstance(items, list) or len(items) > BULK_MAX:
        raise Invalid.field("items", N_f("Give a list of at most %(BULK_MAX)s items.", BULK_MAX=BULK_MAX))
    if not items:
        return 0
    session_ids = {str(item.get("session_id")) for item in items}
    owned = set(
        db.session.scalars(
            select(WahaSession.id).where(WahaSession.tenant_id == tenant.id, WahaSession.id.in_(session_ids))
        )
    )
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if str(item.get("session_id")) not in owned:
            raise NotFound(N_("No such session."), code="session_not_found", details={"index": index})
        try:
            rows.append(
                _row_values(
                    tenant.id,
                    str(item["session_id"]),
                    item.get("chat_id"),
                    body=item.get("body"),
                    media=item.get("media"),
                    reply_to=item.get("reply_to"),
                    lane=item.get("lane", "campaign"),
                    not_before=item.get("not_before"),
                    origin=item.get("origin"),
                    origin_id=item.get("origin_id"),
                    typing=bool(item.get("typing", False)),
                    scheduled=False,
                    actor=actor,
                    now=now,
                )
            )
        except Invalid as exc:
            exc.details = {**exc.details, "index": index}
            raise
    db.session.execute(insert(QueuedSend), rows)
    audit.record(
        tenant.id,
        "outreach.enqueue_many",
        actor,
        target_type="session",
        target_id=",".join(sorted(session_ids))[:255],
        details={"count": len(rows), "sessions": sorted(session_ids)},
    )
    db.session.commit()
    for session_id in session_ids:
        firsts = [r["not_before"] for r in rows if r["session_id"] == session_id]
        wake(session_id, None if any(f is None for f in firsts) else min(firsts))
    return len(rows)


def get_item(tenant: Tenant, item_id: Any) -> QueuedSend:
    """One of the tenant's queued sends; NotFound("queued_send_not_found") otherwise."""
    item = get_for_tenant(db.session, QueuedSend, tenant.id, item_id)
    if item is None:
        raise NotFound(N_("No such queued message."), code="queued_send_not_found")
    return item


def cancel(tenant: Tenant, item_id: Any, actor: Actor) -> QueuedSend:
    """Cancel one queued item (Conflict "not_cancellable" once it is being sent or settled); audited."""
    item = get_item(tenant, item_id)
    result = db.session.execute(
        update(QueuedSend)
        .where(QueuedSend.id == item.id, QueuedSend.state == "queued")
        .values(state="cancelled", hold_reason=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        db.session.rollback()
        db.session.refresh(item)
        raise Conflict(
            N_f("This message is %(state)s and can no longer be cancelled.", state=item.state),
            code="not_cancellable",
            details={"state": item.state},
        )
    audit.record(
        tenant.id,
        "outreach.cancel",
        actor,
        target_type="queued_send",
        target_id=item.id,
        details={"session_id": item.session_id, "lane": item.lane, "scheduled": item.scheduled},
    )
    db.session.commit()
    db.session.refresh(item)
    settled([item])
    return item


def _queue_state(tenant: Tenant, session_id: str) -> SendQueueSession:
    state = db.session.get(SendQueueSession, session_id, with_for_update=True)
    if state is None:
        state = SendQueueSession(session_id=session_id, tenant_id=tenant.id, paused=False)
        db.session.add(state)
    return state


def pause_session(tenant: Tenant, session_id: Any, actor: Actor) -> SendQueueSession:
    """Stop dispatching the session's queue (nothing is dropped); audited as "outreach.pause"."""
    session = get_session(tenant, session_id)
    state = _queue_state(tenant, session.id)
    state.paused, state.paused_at, state.paused_by = True, utcnow(), actor.label
    audit.record(tenant.id, "outreach.pause", actor, target_type="session", target_id=session.id)
    db.session.commit()
    poke(session.id)
    return state


def resume_session(tenant: Tenant, session_id: Any, actor: Actor) -> SendQueueSession:
    """Dispatch the session's queue again; audited as "outreach.resume"."""
    session = get_session(tenant, session_id)
    state = _queue_state(tenant, session.id)
    state.paused, state.paused_at, state.paused_by = False, None, None
    audit.record(tenant.id, "outreach.resume", actor, target_type="session", target_id=session.id)
    db.session.commit()
    wake(session.id)
    return state


def clear_campaign_traffic(tenant: Tenant, session_id: Any, actor: Actor) -> int:
    """Cancel every queued campaign-lane item of the session (what to do after a ban warning); returns how
    many. Items being sent right now finish. Audited as "outreach.clear_campaign" with the count."""
    session = get_session(tenant, session_id)
    cancelled = list(
        db.session.scalars(
            update(QueuedSend)
            .where(QueuedSend.session_id == session.id, QueuedSend.lane == "campaign", QueuedSend.state == "queued")
            .values(state="cancelled", hold_reason=None, updated_at=utcnow())
            .returning(QueuedSend)
            .execution_options(synchronize_session=False)
        )
    )
    audit.record(
        tenant.id,
        "outreach.clear_campaign",
        actor,
        target_type="session",
        target_id=session.id,
        details={"cancelled": len(cancelled)},
    )
    db.session.commit()
    settled(cancelled)
    return len(cancelled)


# ---------------------------------------------------------------------- waking the dispatcher


def poke(session_id: str) -> None:
    """Wake the session's running dispatcher from its nap so it plans again (nothing when none runs)."""
    try:
        client = redis_store.client
        pipe = client.pipeline()
        pipe.rpush(POKE_KEY + session_id, "1")
        pipe.expire(POKE_KEY + session_id, 60)
        pipe.execute()
    except redis.RedisError as exc:
        log.info("send queue poke skipped: Redis is unavailable (%s)", type(exc).__name__)


def running(session_id: str) -> bool:
    """True while a dispatcher holds the session's lock (False when Redis cannot tell)."""
    try:
        return bool(redis_store.client.exists(LOCK_KEY + session_id))
    except redis.RedisError:
        return False


def wake(session_id: str, at: datetime | None = None) -> None:
    """Have the session's dispatcher look at its queue: now (a job, or a poke when one runs), or at `at`."""
    try:
        if at is not None and at > utcnow() + timedelta(milliseconds=50):
            jobs.enqueue_at(at, jobs.JOB_DISPATCH_SENDS, session_id, queue=jobs.QUEUE_OUTREACH)
            return
        if running(session_id):
            poke(session_id)
        else:
            jobs.enqueue(jobs.JOB_DISPATCH_SENDS, session_id, queue=jobs.QUEUE_OUTREACH)
    except redis.RedisError as exc:
        # the rows are committed: the sweep drives them once Redis is back
        log.info("send queue wake-up deferred to the sweep: Redis is unavailable (%s)", type(exc).__name__)
