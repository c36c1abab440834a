"""Sends whose outcome is not settled: when to try again, how to find out, and the job that settles them.

A send row carries `send_state` (see models.messages.SEND_STATES) until its outcome is known:

- `unsent` (status ERROR): WhatsApp provably never got it. A retry with the same Idempotency-Key sends it.
- `unknown` (status PENDING): the WAHA call ended without an answer, so WhatsApp may have it. Acks move the
  status as usual. A retry with the same key sends a text again under the same pre-generated id, which WAHA
  deduplicates (sendText's `id`), so it is delivered once whichever way the first call went. WAHA documents no
  such id for media sends, so a media retry never sends again: it looks the message up by its id instead.
- `sending`: a call is under way; one left behind by a crashed process is treated as `unknown` once stale.

`reconcile()` (scheduled) settles the rest by looking each message up in WAHA by its id; a text WAHA does not have
is sent once more under its pre-generated id (WAHA keeps one message per id), so a send whose process died during
the call still goes out even when the caller's retry only saw the row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from portal.extensions import db
from portal.models import ACK_NAMES, Message, WahaSession, rowcount, utcnow
from portal.services import servers, upstream
from portal.services.audit import Actor
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

UNSETTLED = ("unknown", "sending")
# Acks usually settle an unknown send within seconds; the lookup waits that long before asking WAHA.
SETTLE_AFTER = timedelta(seconds=30)
# A call still "sending" after this long belongs to a process that died (calls are bounded far below it).
STALE_SENDING = timedelta(minutes=2)
# A send WhatsApp never confirmed, neither by an ack nor to a lookup, for this long failed.
GIVE_UP_AFTER = timedelta(hours=24)
BATCH = 200
RECONCILE = Actor(type="system", label="reconcile")
NOT_CONFIRMED = "Not sent: WhatsApp never confirmed this message."


def pre_generated_id(message: Message) -> str | None:
    """The id the portal chose for the send ("3EB0..."), read back from the predicted WhatsApp id."""
    prefix = f"true_{message.chat_id}_"
    wid = message.waha_message_id or ""
    return wid[len(prefix) :] if wid.startswith(prefix) and len(wid) > len(prefix) else None


def _stale(message: Message, now: datetime) -> bool:
    updated = message.updated_at
    if updated.tzinfo is None:
        updated = updated.replace(tzinfo=UTC)
    return now - updated >= STALE_SENDING


def another_try(message: Message, now: datetime | None = None) -> str | None:
    """The send_state to claim when a repeat of `message`'s request should call WAHA again, else None
    (the stored row is the answer)."""
    state = message.send_state
    if state == "unsent" and message.status == "ERROR":
        return "unsent" if pre_generated_id(message) else None
    if message.media is not None or message.status != "PENDING" or not pre_generated_id(message):
        return None  # media: no documented dedupe in WAHA; acked: settled
    if state == "unknown" or (state == "sending" and _stale(message, now or utcnow())):
        return state
    return None


def unsettled(message: Message) -> bool:
    """True while WhatsApp may or may not have the message (no ack yet)."""
    return message.send_state in UNSETTLED and message.status == "PENDING"


def claim(message: Message, from_state: str) -> bool:
    """Take the row over for another call to WAHA (state -> sending, back to PENDING) in the caller's
    transaction; False when a concurrent request or an ack got there first (the row is then reloaded)."""
    now = utcnow()
    conditions = [Message.id == message.id, Message.send_state == from_state]
    conditions.append(Message.status == ("ERROR" if from_state == "unsent" else "PENDING"))
    result = db.session.execute(
        update(Message)
        .where(*conditions)
        .values(send_state="sending", status="PENDING", error=None, failed_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        db.session.refresh(message)
        return False
    for name, value in (
        ("send_state", "sending"),
        ("status", "PENDING"),
        ("error", None),
        ("failed_at", None),
        ("updated_at", now),
    ):
        set_committed_value(message, name, value)
    return True


def _found_status(found: dict[str, Any]) -> str:
    ack = found.get("ack")
    name = ACK_NAMES.get(ack) if isinstance(ack, int) and not isinstance(ack, bool) else None
    # WAHA has the message, so it is at least on WhatsApp's server.
    return name if name not in (None, "PENDING") else "SERVER"


def _settle(message: Message, status: str | None) -> bool:
    """Mark the send settled (and move a PENDING row to `status`); commits. False if it was settled meanwhile."""
    now = utcnow()
    values: dict[Any, Any] = {
        Message.send_state: None,
        Message.updated_at: now,
        Message.sent_at: func.coalesce(Message.sent_at, now),
    }
    if status is not None:
        values[Message.status] = case((Message.status == "PENDING", status), else_=Message.status)
        if status == "ERROR":
            values[Message.failed_at] = func.coalesce(Message.failed_at, now)
    result = db.session.execute(
        update(Message)
        .where(Message.id == message.id, Message.send_state.in_(UNSETTLED))
        .values(values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(message)
    return rowcount(result) == 1


def look_up(client: Any, external_name: str, message: Message) -> str:
    """Ask WAHA for the message by its id: "settled" (found, row updated and committed), "missing" (WAHA does
    not have it) or "unreachable" (no answer; try later)."""
    try:
        found = client.get_chat_message(external_name, message.chat_id, message.waha_message_id)
    except waha_errors.WahaError as exc:
        upstream.log_failure("message lookup failed", exc, message=message.id)
        return "unreachable"
    if found is None:
        return "missing"
    _settle(message, _found_status(found))
    return "settled"


@dataclass
class ReconcileReport:
    """What one reconcile run did: rows settled by acks or by a lookup, given up, and still open."""

    settled: int = 0
    failed: int = 0
    open: int = 0
    resent: int = 0


def reconcile(now: datetime | None = None, limit: int = BATCH) -> ReconcileReport:
    """Settle sends left unknown: a row acked meanwhile is settled as it stands; otherwise WAHA is asked for the
    message by its id. Found: settled with its ack. Missing for GIVE_UP_AFTER: ERROR (never confirmed).
    Commits per row."""
    now = now or utcnow()
    report = ReconcileReport()
    rows = list(
        db.session.scalars(
            select(Message)
            .options(joinedload(Message.session).joinedload(WahaSession.server))
            .where(Message.send_state.in_(UNSETTLED), Message.updated_at < now - SETTLE_AFTER)
            .order_by(Message.updated_at)
            .limit(limit)
        )
    )
    for message in rows:
        if message.send_state == "sending" and not _stale(message, now):
            report.open += 1
            continue
        if message.status != "PENDING":
            report.settled += _settle(message, None)
            continue
        outcome = look_up(servers.client_for(message.session.server), message.session.external_name, message)
        if outcome == "settled":
            report.settled += 1
            continue
        created = message.created_at if message.created_at.tzinfo else message.created_at.replace(tzinfo=UTC)
        if outcome == "missing" and now - created >= GIVE_UP_AFTER:
            message.error = NOT_CONFIRMED
            db.session.commit()
            report.failed += _settle(message, "ERROR")
            continue
        if outcome == "missing" and _send_again(message):
            # WAHA never got it (e.g. the process died during its call, and the caller's retry only saw the row)
            report.resent += 1
            continue
        if outcome == "missing" and message.send_state == "sending":
            # a process died during its call: the outcome is unknown, and a retry may now send again
            message.send_state = "unknown"
            db.session.commit()
        report.open += 1
    if report.settled or report.failed or report.resent:
        log.info(
            "unsettled sends: %d settled, %d sent again, %d failed, %d still open",
            report.settled,
            report.resent,
            report.failed,
            report.open,
        )
    return report


def _send_again(message: Message) -> bool:
    """Send a text WAHA does not have once more, under its pre-generated id (WAHA keeps one message per id, so
    this cannot make a second one); True when WAHA took it. Media sends are never repeated from here (no
    documented dedupe): they are given up on after GIVE_UP_AFTER. Audited as "message.send_retry"."""
    from portal.services import audit

    pre_id = pre_generated_id(message)
    if message.media is not None or pre_id is None or message.send_state not in UNSETTLED:
        return False
    session = message.session
    quoted = db.session.get(Message, message.reply_to_id) if message.reply_to_id else None
    if not claim(message, message.send_state):
        db.session.commit()
        return False
    audit.record(
        message.tenant_id,
        "message.send_retry",
        RECONCILE,
        target_type="message",
        target_id=message.id,
        details={"session_id": message.session_id, "chat_id": message.chat_id, "previous": "missing on WAHA"},
    )
    db.session.commit()
    try:
        result = servers.client_for(session.server).send_text(
            session.external_name,
            message.chat_id,
            message.body or "",
            message_id=pre_id,
            reply_to=quoted.waha_message_id if quoted is not None else None,
        )
    except waha_errors.WahaError as exc:
        upstream.log_failure("send again failed", exc, message=message.id)
        message.send_state = "unknown"  # whatever happened, the next run looks it up again
        db.session.commit()
        return False
    del result  # WAHA took it under the predicted id; acks move the status on as for any send
    _settle(message, None)
    return True
