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
from datetime import datetime, timedelta

from portal.extensions import db
from portal.models import QueuedSend, SendQueueSession, Tenant, WahaSession, utcnow
from portal.services import servers, upstream
from portal.services.audit import Actor
from portal.services.errors import Conflict, RateLimited, ServiceError, Upstream
from portal.services.messages.sending import send_message
from portal.services.outreach.rules import settled
from portal.services.outreach.settings import Outreach, outreach_settings
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF = (5, 30, 120, 600)  # seconds before the next attempt after a send WAHA never got
TYPING_MIN, TYPING_MAX = 1.0, 4.0  # seconds of "typing..." before a campaign message
TYPING_PER_CHARACTER = 0.03
TYPING_SHARE = 0.6  # typing takes at most this share of the gap before the message


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


def _actor(item: QueuedSend) -> Actor:
    return Actor(type=item.created_by_type, id=item.created_by_id, label=item.created_by_label)


def _source(item: QueuedSend) -> str:
    if item.lane == "campaign":
        return "campaign"
    return "scheduled" if item.scheduled else "queue"


def _show_typing(session: WahaSession, item: QueuedSend, seconds: float) -> None:
    """Typing presence for `seconds`, then stopped; a courtesy: WAHA failures are logged, never fatal."""
    client = servers.client_for(session.server)
    try:
        client.start_typing(session.external_name, item.chat_id)
    except waha_errors.WahaError as exc:
        upstream.log_failure("typing not sent", exc, session=session.id)
        return
    time.sleep(seconds)
    try:
        client.stop_typing(session.external_name, item.chat_id)
    except waha_errors.WahaError as exc:
        upstream.log_failure("typing not stopped", exc, session=session.id)


def _requeue(item: QueuedSend, reason: str, after: float) -> None:
    item.state, item.hold_reason = "queued", reason[:200]
    item.not_before = utcnow() + timedelta(seconds=after)


def _next_slot(item: QueuedSend, sent_at: datetime) -> None:
    """After a campaign send: the session's next campaign message waits a gap drawn from the settings."""
    state = db.session.get(SendQueueSession, item.session_id)
    if state is None:
        state = SendQueueSession(session_id=item.session_id, tenant_id=item.tenant_id, paused=False)
        db.session.add(state)
    gap = outreach_settings(item.tenant_id).draw_gap()
    state.last_sent_at = sent_at
    state.next_campaign_at = sent_at + timedelta(seconds=gap)


def send_item(item: QueuedSend, typing_for: float = 0.0) -> str:
    """Send a claimed item; returns its new state ("sent", "failed" or "queued"). Commits."""
    tenant = db.session.get(Tenant, item.tenant_id)
    session = db.session.get(WahaSession, item.session_id)
    if tenant is None or session is None:  # deleted meanwhile; the cascade removes the row
        return "failed"
    if item.typing and typing_for > 0:
        _show_typing(session, item, typing_for)
    started = utcnow()
    try:
        message = send_message(
            tenant,
            item.session_id,
            _actor(item),
            to=item.chat_id,
            text=item.body,
            media=item.media,
            reply_to=item.reply_to,
            idempotency_key=idempotency_key(item),
            source=_source(item),
            paced=False,
        )
    except RateLimited as exc:
        db.session.rollback()
        _requeue(item, "pacing", float(exc.retry_after or 1))
    except Conflict as exc:
        db.session.rollback()
        if exc.code == "session_not_ready":
            _requeue(item, f"session is {exc.details.get('status', 'not ready')}", 0)
            item.attempts = max(0, item.attempts - 1)
        else:
            item.state, item.last_error = "failed", f"{exc.code}: {exc.message}"[:500]
    except Upstream as exc:
        db.session.rollback()
        message_id = exc.details.get("messageId")
        if exc.details.get("outcome") == upstream.UNKNOWN and message_id:
            # WhatsApp may have it: never sent again from here; acks or the outbox settle the message
            item.state, item.message_id, item.sent_at = "sent", message_id, started
            item.last_error = "unconfirmed: WAHA did not answer"
        elif item.attempts >= MAX_ATTEMPTS:
            item.state, item.last_error = "failed", f"{exc.code}: {exc.message}"[:500]
        else:
            _requeue(item, "WAHA unavailable, retrying", BACKOFF[min(item.attempts, len(BACKOFF)) - 1])
            item.last_error = f"{exc.code}: {exc.message}"[:500]
    except ServiceError as exc:
        db.session.rollback()
        item.state, item.last_error = "failed", f"{exc.code}: {exc.message}"[:500]
    else:
        if message.status == "ERROR":
            item.state, item.last_error = "failed", (message.error or "not sent")[:500]
        else:
            item.state, item.last_error = "sent", None
            item.sent_at = started
        item.message_id = message.id
    item.updated_at = utcnow()
    if item.lane == "campaign" and item.state == "sent":
        _next_slot(item, started)
    db.session.commit()
    if item.state in ("sent", "failed"):
        settled([item])
    return item.state
