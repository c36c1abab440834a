"""Sending one claimed queue item through the ordinary send service, and recording what came of it.

The send goes under the idempotency key "queue-<item id>", so a repeat after a crash finds the first attempt's
message instead of sending another. Typing presence comes first for campaign items that ask for it, inside the
gap (it ends when the message goes). Outcomes: sent (or unconfirmed: WhatsApp may have it, the outbox settles
it) -> "sent"; the session was not ready, pacing, or WAHA provably never got it -> back to "queued" with a
back-off; anything the send refuses for good -> "failed". The session's next campaign slot is set after each
campaign send (now plus a gap drawn from the tenant's settings).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from portal.extensions import db
from portal.models import QueuedSend, SendQueueSession, Tenant, WahaSession, rowcount, utcnow
from portal.services import servers, upstream
from portal.services.audit import Actor
from portal.services.errors import Conflict, RateLimited, ServiceError, StorageDown, Upstream
from portal.services.messages.sending import send_message
from portal.services.outreach import held_media
from portal.services.outreach.rules import has_listeners, settled
from portal.services.outreach.settings import Outreach, outreach_settings
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF = (5, 30, 120, 600)  # seconds before the next attempt after a send WAHA never got
TYPING_MIN, TYPING_MAX = 1.0, 4.0  # seconds of "typing..." before a campaign message
TYPING_PER_CHARACTER = 0.03
TYPING_SHARE = 0.6  # typing takes at most this share of the gap before the message
STOP_LEAD = 0.05  # seconds between the end of typing and the message
LIMITED_RETRY = 900.0  # seconds before a send refused for a new-contact limit without a time is tried again


def idempotency_key(item: QueuedSend) -> str:
    return f"queue-{item.id}"


def typing_seconds(item: QueuedSend, state: SendQueueSession | None, settings: Outreach) -> float:
    """How long to show typing before the item: longer for longer texts, within the gap before it."""
    wanted = min(TYPING_MAX, max(TYPING_MIN, len(item.body or "") * TYPING_PER_CHARACTER))
    if state is not None and state.next_campaign_at is not None and state.last_sent_at is not None:
        gap = (state.next_campaign_at - state.last_sent_at).total_seconds()
    else:
        gap = settings.gap_min
    return max(0.0, min(wanted, gap * TYPING_SHARE))


@dataclass(frozen=True)
class Work:
    """What sending one item needs, read once from its row (the row expires at every commit)."""

    id: int
    tenant_id: int
    session_id: str
    lane: str
    chat_id: str
    body: str | None
    media: dict[str, Any] | None
    reply_to: str | None
    typing: bool
    scheduled: bool
    attempts: int
    actor: Actor
    origin: str | None = None  # what queued it (e.g. "campaign"), and its id there: the gates read them
    origin_id: int | None = None

    @classmethod
    def of(cls, item: QueuedSend) -> Work:
        return cls(
            item.id,
            item.tenant_id,
            item.session_id,
            item.lane,
            item.chat_id,
            item.body,
            item.media,
            item.reply_to,
            item.typing,
            item.scheduled,
            item.attempts,
            Actor(type=item.created_by_type, id=item.created_by_id, label=item.created_by_label),
            item.origin,
            item.origin_id,
        )

    @property
    def source(self) -> str:
        if self.lane == "campaign":
            return "campaign"
        return "scheduled" if self.scheduled else "queue"


def _show_typing(session: WahaSession, chat_id: str, seconds: float) -> None:
    """Typing presence for `seconds`, then stopped; a courtesy: WAHA failures are logged, never fatal."""
    client = servers.client_for(session.server)
    until = utcnow() + timedelta(seconds=seconds)
    try:
        client.start_typing(session.external_name, chat_id)
    except waha_errors.WahaError as exc:
        upstream.log_failure("typing not sent", exc, session=session.id)
        return
    _sleep_until(until)
    try:
        client.stop_typing(session.external_name, chat_id)
    except waha_errors.WahaError as exc:
        upstream.log_failure("typing not stopped", exc, session=session.id)


def _requeued(reason: str, after: float) -> dict[str, Any]:
    return {"state": "queued", "hold_reason": reason[:200], "not_before": utcnow() + timedelta(seconds=after)}


def _failed(exc: ServiceError) -> dict[str, Any]:
    return {"state": "failed", "last_error": f"{exc.code}: {exc.message}"[:500]}


def _outcome(work: Work, exc: ServiceError, started: datetime) -> dict[str, Any]:
    """The row's new values after the send refused or failed."""
    if isinstance(exc, RateLimited):
        return _requeued("pacing", float(exc.retry_after or 1))
    if isinstance(exc, Conflict) and exc.code == "session_not_ready":
        # not an attempt: the item waits for its session
        return {**_requeued(f"session is {exc.details.get('status', 'not ready')}", 0), "attempts": work.attempts - 1}
    if isinstance(exc, Conflict) and exc.code == "recipient_opted_out":
        # on the tenant's opt-out list (read with the send's session lookup): never sent, not an attempt
        return {"state": "skipped", "last_error": "opted_out", "hold_reason": None, "attempts": work.attempts - 1}
    if isinstance(exc, Conflict) and exc.code == "new_contact_limited":
        # WhatsApp limits new chats of this number for now: the item waits until the limit lifts
        until = _parse_until(exc.details.get("until"))
        wait = (until - utcnow()).total_seconds() if until else LIMITED_RETRY
        return {**_requeued("new contacts limited", max(wait, 1.0)), "attempts": work.attempts - 1}
    if isinstance(exc, Conflict) and exc.code == "quota_exceeded":
        # over the tenant's quota: held (not an attempt) until the count starts again; a standing limit fails it
        until = _parse_until(exc.details.get("resetsAt"))
        if until is None:
            return {**_failed(exc), "attempts": work.attempts - 1}
        wait = max((until - utcnow()).total_seconds(), 1.0)
        return {**_requeued("quota_exceeded", wait), "attempts": work.attempts - 1, "last_error": "quota_exceeded"}
    message_id = exc.details.get("messageId")
    if exc.details.get("outcome") == upstream.UNKNOWN and message_id:
        # WhatsApp may have it: never sent again from here; acks or the outbox settle the message
        return {"state": "sent", "message_id": message_id, "sent_at": started, "last_error": "unconfirmed"}
    if isinstance(exc, Upstream | StorageDown) and work.attempts < MAX_ATTEMPTS:
        after = BACKOFF[min(work.attempts, len(BACKOFF)) - 1]
        return {**_requeued("WAHA unavailable, retrying", after), "last_error": f"{exc.code}: {exc.message}"[:500]}
    return _failed(exc)


def _parse_until(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _sleep_until(moment: datetime | None) -> None:
    if moment is not None:
        time.sleep(max(0.0, (moment - utcnow()).total_seconds()))


def send_work(
    work: Work,
    tenant: Tenant,
    typing_for: float = 0.0,
    send_at: datetime | None = None,
    gap: float | None = None,
    defer: list[dict[str, Any]] | None = None,
) -> tuple[str, datetime]:
    """Send a claimed item (at `send_at`, its campaign slot, when given: typing starts `typing_for` seconds
    before it); returns its new state ("sent", "failed" or "queued") and when it went. After a campaign send
    the session's next slot is `gap` seconds later (drawn from the settings when None). Commits.

    With `defer`, a "sent" outcome is appended there for the caller to write with others (`record_sent`)
    instead of being written now: a dispatcher that dies first leaves the row "sending", and the sweep's retry
    finds the message by its key."""
    started = utcnow()
    called: list[datetime] = []  # when the call to WAHA was made (after waiting for the slot)

    def at_the_slot() -> None:
        _sleep_until(send_at)
        called.append(utcnow())

    try:
        if work.typing and typing_for > STOP_LEAD:
            session = db.session.get(WahaSession, work.session_id)
            if session is not None:
                # typing ends STOP_LEAD before the slot, so the stop call does not delay the message
                _sleep_until(send_at - timedelta(seconds=typing_for) if send_at else None)
                _show_typing(session, work.chat_id, typing_for - STOP_LEAD)
        started = utcnow()
        message = send_message(
            tenant,
            work.session_id,
            work.actor,
            to=work.chat_id,
            text=work.body,
            media=held_media.for_send(work.media),
            reply_to=work.reply_to,
            idempotency_key=f"queue-{work.id}",
            source=work.source,
            paced=False,
            # a slot still ahead is waited for right before the call; without one the send goes at once (and
            # asks the server's breaker with its other gates: messages.send_message)
            before_call=at_the_slot if send_at is not None else None,
            key_is_new=work.attempts == 1,  # never claimed before: no send used the key yet
        )
        started = called[0] if called else started
    except ServiceError as exc:
        db.session.rollback()
        values = _outcome(work, exc, called[0] if called else started)
    else:
        if message.status == "ERROR":
            values = {"state": "failed", "last_error": (message.error or "not sent")[:500], "message_id": message.id}
        else:
            values = {"state": "sent", "last_error": None, "sent_at": started, "message_id": message.id}
    if defer is not None and values["state"] == "sent":
        defer.append({"id": work.id, "updated_at": utcnow(), **values})
        return values["state"], started
    now = utcnow()
    db.session.execute(
        update(QueuedSend)
        .where(QueuedSend.id == work.id)
        .values(updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if work.lane == "campaign" and values["state"] == "sent":
        if gap is None:
            gap = outreach_settings(work.tenant_id).draw_gap()
        _next_slot(work, started, gap)
    db.session.commit()
    if values["state"] in ("sent", "failed", "skipped") and has_listeners():
        item = db.session.get(QueuedSend, work.id)
        if item is not None:
            settled([item])
    return values["state"], started


def record_sent(
    outcomes: list[dict[str, Any]], work: Work | None = None, slot: tuple[datetime, float] | None = None
) -> None:
    """Write deferred "sent" outcomes in one statement, and the session's next slot, then commit."""
    if outcomes:
        db.session.execute(update(QueuedSend), outcomes)
    if work is not None and slot is not None:
        _next_slot(work, *slot)
    db.session.commit()
    if outcomes and has_listeners():
        items = db.session.scalars(select(QueuedSend).where(QueuedSend.id.in_([o["id"] for o in outcomes]))).all()
        settled(list(items))
    outcomes.clear()


def _next_slot(work: Work, sent_at: datetime, gap: float) -> None:
    """The session's next campaign message waits `gap` seconds after this one (in the caller's transaction)."""
    values = {"last_sent_at": sent_at, "next_campaign_at": sent_at + timedelta(seconds=gap)}
    result = db.session.execute(
        update(SendQueueSession)
        .where(SendQueueSession.session_id == work.session_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) == 0:
        db.session.add(SendQueueSession(session_id=work.session_id, tenant_id=work.tenant_id, paused=False, **values))


def send_item(item: QueuedSend, typing_for: float = 0.0, send_at: datetime | None = None) -> str:
    """Send a claimed item (see send_work); returns its new state. Commits."""
    work = Work.of(item)
    tenant = db.session.get(Tenant, work.tenant_id)
    if tenant is None:  # deleted meanwhile; the cascade removes the row
        return "failed"
    return send_work(work, tenant, typing_for, send_at)[0]
