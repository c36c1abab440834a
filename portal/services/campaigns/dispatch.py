"""Sending a campaign: the numbers are checked with WhatsApp at a paced rate, the ones on WhatsApp go into the
send queue (campaign lane), and the queue's gate and settle hook keep the campaign's rules and its recipients'
states.

`advance(campaign_id)` moves one campaign forward and is safe to run any number of times, from any worker:
scheduled -> checking (at its start time, once one of its sessions is WORKING) -> running (every number
checked and queued) -> completed (nothing left in the queue). A batch of recipients is checked and queued in
one transaction, claimed with SKIP LOCKED, so a worker that dies mid-batch leaves them pending for the next
run, and no recipient is queued twice. The queue's gate (`campaign_gate`) holds items of a paused campaign, in
quiet hours or over the daily cap, and skips those of a cancelled one; `settled` writes each outcome back.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update

from portal.extensions import db
from portal.models import Campaign, CampaignRecipient, Contact, Tenant, WahaSession, utcnow
from portal.services import audit, optouts
from portal.services.audit import Actor
from portal.services.campaigns.lifecycle import ACTIVE
from portal.services.campaigns.templates import render
from portal.services.contacts import CHECK_FRESH, _ask_waha, _remember
from portal.services.outreach.settings import Outreach
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

CAMPAIGN_ACTOR = Actor(type="system", label="campaign")
BATCH = 200


def _working(session_ids: list[str]) -> dict[str, WahaSession]:
    stmt = select(WahaSession).where(WahaSession.id.in_(session_ids), WahaSession.status == "WORKING")
    return {s.id: s for s in db.session.scalars(stmt)}


def advance(campaign_id: int, *, budget: float = 20.0) -> str | None:
    """Move the campaign on as far as it can within about `budget` seconds; returns its state."""
    deadline = time.monotonic() + budget
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    if campaign.state == "scheduled":
        if campaign.start_at is not None and campaign.start_at > utcnow():
            return campaign.state
        if not _working(campaign.session_ids or []):
            message = "None of the campaign's sessions is WORKING; it starts when one is."
            if campaign.error != message:
                campaign.error = message
                db.session.commit()
            return campaign.state
        campaign.state, campaign.started_at, campaign.error = "checking", utcnow(), None
        db.session.commit()
    while campaign.state == "checking" and time.monotonic() < deadline:
        if not _check_batch(campaign):
            break
        db.session.refresh(campaign)
    if campaign.state in ("checking", "running", "paused", "cancelled"):
        _catch_up(campaign.id)
    if campaign.state == "running":
        _finish_if_done(campaign)
    return campaign.state


def _catch_up(campaign_id: int) -> None:
    """Outcomes the settle hook never wrote (the process died between the queue's commit and the hook):
    read back from the send queue, so a recipient never stays "queued" for a message that settled."""
    from portal.models import QueuedSend

    stmt = (
        select(QueuedSend)
        .join(CampaignRecipient, CampaignRecipient.id == QueuedSend.origin_id)
        .where(
            QueuedSend.origin == "campaign",
            CampaignRecipient.campaign_id == campaign_id,
            CampaignRecipient.state == "queued",
            QueuedSend.state.in_(tuple(_OUTCOME)),
        )
    )
    for item in list(db.session.scalars(stmt)):
        settled(item)


def _check_rate() -> float:
    return float(current_app.config.get("CAMPAIGN_CHECK_RATE", 5.0))


def _check_batch(campaign: Campaign) -> bool:
    """Check and queue one batch of pending recipients; False when there is nothing to do now."""
    working = _working(campaign.session_ids or [])
    if not working:
        campaign.error = "None of the campaign's sessions is WORKING; checking waits for one."
        db.session.commit()
        return False
    stmt = (
        select(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "pending")
        .order_by(CampaignRecipient.id)
        .limit(max(1, min(BATCH, int(_check_rate() * 10))))  # about ten seconds of checks per batch
        .with_for_update(skip_locked=True)
    )
    batch = list(db.session.scalars(stmt))
    if not batch:
        pending = db.session.scalar(
            select(func.count())
            .select_from(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "pending")
        )
        db.session.rollback()
        if not pending:
            db.session.execute(
                update(Campaign).where(Campaign.id == campaign.id, Campaign.state == "checking").values(state="running")
            )
            db.session.commit()
        return False
    known = _known_answers(campaign.tenant_id, [r.chat_id for r in batch])
    listed = optouts.opted_out_among(campaign.tenant_id, [r.chat_id for r in batch])
    now = utcnow()
    interval = 1.0 / max(_check_rate(), 0.01)
    to_queue: list[CampaignRecipient] = []
    sessions = list(working.values())
    for index, recipient in enumerate(batch):
        if recipient.chat_id in listed:
            recipient.state, recipient.reason = "opted_out", "opted_out"
            continue
        exists = known.get(recipient.chat_id)
        if exists is None:
            session = working.get(recipient.session_id or "") or sessions[index % len(sessions)]
            try:
                exists = _ask_waha(session.server, session.external_name, recipient.chat_id.removesuffix("@c.us"))
            except waha_errors.WahaError as exc:
                log.info("campaign %s: check-exists failed (%s); trying later", campaign.id, type(exc).__name__)
                campaign.error = "WhatsApp could not be asked about the numbers; trying again."
                break
            _remember(campaign.tenant_id, recipient.chat_id, exists, now)
            time.sleep(interval)
        if not exists:
            recipient.state, recipient.reason = "skipped", "not_on_whatsapp"
            continue
        if recipient.session_id not in working:
            recipient.session_id = sessions[index % len(sessions)].id
        recipient.state = "queued"
        to_queue.append(recipient)
    _queue(campaign, to_queue)  # commits the recipients' states with the queue's rows
    return True


def _known_answers(tenant_id: int, chat_ids: list[str]) -> dict[str, bool]:
    since = utcnow() - CHECK_FRESH
    stmt = select(Contact.chat_id, Contact.wa_exists).where(
        Contact.tenant_id == tenant_id,
        Contact.chat_id.in_(chat_ids),
        Contact.wa_exists.is_not(None),
        Contact.exists_checked_at >= since,
    )
    return {chat_id: bool(exists) for chat_id, exists in db.session.execute(stmt)}


def _queue(campaign: Campaign, recipients: list[CampaignRecipient]) -> None:
    from portal.services import outreach

    if not recipients:
        db.session.commit()
        return
    tenant = db.session.get(Tenant, campaign.tenant_id)
    if tenant is None:
        return
    media = dict(campaign.media) if campaign.media else None
    items = []
    for recipient in recipients:
        text = render(campaign.template, recipient.values or {})
        items.append(
            {
                "session_id": recipient.session_id,
                "chat_id": recipient.chat_id,
                "body": text,
                "media": {**media, "caption": text} if media and media.get("kind") != "audio" else media,
                "lane": "campaign",
                "origin": "campaign",
                "origin_id": recipient.id,
                "typing": False,
            }
        )
    outreach.enqueue_many(tenant, items, actor=CAMPAIGN_ACTOR)


def _finish_if_done(campaign: Campaign) -> None:
    left = db.session.scalar(
        select(func.count())
        .select_from(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state.in_(("pending", "queued")))
    )
    if not left:
        campaign.state, campaign.finished_at = "completed", utcnow()
    db.session.commit()


def due_campaigns() -> list[int]:
    """Campaigns with something to do (the periodic tick advances each)."""
    stmt = select(Campaign.id).where(Campaign.state.in_(("scheduled", "checking", "running")))
    return list(db.session.scalars(stmt))


# ---------------------------------------------------------------------------------------------- queue hooks


def tenant_day(tenant_id: int, now: datetime) -> tuple[datetime, datetime]:
    """The tenant's calendar day around `now` as UTC bounds [start, end): midnight to midnight on the tenant's
    clock (Administration > Outreach's time zone; a day is 23 or 25 hours when daylight saving changes)."""
    from datetime import UTC, time

    from portal.services.outreach.settings import outreach_settings

    zone = outreach_settings(tenant_id).zone
    today = now.astimezone(zone).date()
    start = datetime.combine(today, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def daily_cap_hold(campaign: Campaign, session_id: str, now: datetime) -> datetime | None:
    """When the session has sent the campaign's daily cap today (the tenant's day), the next midnight on the
    tenant's clock (UTC) until which its items wait; None when it may send."""
    if not campaign.daily_cap:
        return None
    start, end = tenant_day(campaign.tenant_id, now)
    sent_today = db.session.scalar(
        select(func.count())
        .select_from(CampaignRecipient)
        .where(
            CampaignRecipient.campaign_id == campaign.id,
            CampaignRecipient.session_id == session_id,
            CampaignRecipient.sent_at >= start,
            CampaignRecipient.sent_at < end,
        )
    )
    return end if (sent_today or 0) >= campaign.daily_cap else None


def _in_quiet(campaign: Campaign, now: datetime) -> datetime | None:
    """The end of the campaign's quiet hours (UTC) when `now` is inside them, else None. The hours are the
    tenant's local wall clock (Administration > Outreach sets the time zone), as the send queue's own are."""
    start, end = campaign.quiet_start, campaign.quiet_end
    if start is None or end is None:
        return None
    from datetime import time as clock

    from portal.services.outreach.settings import outreach_settings

    zone = outreach_settings(campaign.tenant_id).time_zone
    hours = Outreach(zone, clock(start // 60, start % 60), clock(end // 60, end % 60))
    return hours.quiet_until(now)


def campaign_gate(item: Any, session: Any) -> Any:
    """The send queue's gate for campaign items: skip when the campaign was cancelled; hold while it is paused,
    in its quiet hours, or when the session reached the campaign's daily cap."""
    if getattr(item, "origin", None) != "campaign" or item.origin_id is None:
        return None
    from portal.services.outreach import Hold, Skip

    row = db.session.execute(
        select(Campaign)
        .join(CampaignRecipient, CampaignRecipient.campaign_id == Campaign.id)
        .where(CampaignRecipient.id == item.origin_id)
    ).scalar()
    if row is None or row.state == "cancelled":
        return Skip("campaign_cancelled")
    if row.state == "paused":
        return Hold(None, "campaign paused")
    now = utcnow()
    quiet_until = _in_quiet(row, now)
    if quiet_until is not None:
        return Hold(quiet_until, "campaign quiet hours")
    capped_until = daily_cap_hold(row, item.session_id, now)
    if capped_until is not None:
        return Hold(capped_until, "campaign daily cap reached")
    return None


_OUTCOME = {"sent": "sent", "failed": "failed", "cancelled": "skipped", "skipped": "skipped"}


def settled(item: Any) -> None:
    """Write a campaign item's outcome to its recipient (the queue calls this after the item settled)."""
    if getattr(item, "origin", None) != "campaign" or item.origin_id is None:
        return
    state = _OUTCOME.get(item.state)
    if state is None:
        return
    reason = None if state == "sent" else (item.last_error or item.state)[:40]
    if state == "skipped" and reason == "opted_out":
        state = "opted_out"
    values: dict[str, Any] = {"state": state, "reason": reason, "updated_at": utcnow()}
    if state == "sent":
        values.update(message_id=item.message_id, sent_at=utcnow())
    db.session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.id == item.origin_id, CampaignRecipient.state == "queued")
        .values(**values)
    )
    campaign_id = db.session.scalar(select(CampaignRecipient.campaign_id).where(CampaignRecipient.id == item.origin_id))
    campaign = db.session.get(Campaign, campaign_id) if campaign_id is not None else None
    if campaign is not None and campaign.state == "running":
        _finish_if_done(campaign)  # the last outcome completes the campaign
    db.session.commit()


# Capping levels at which a number's campaigns stop by themselves: the second warning comes before the cap.
PAUSE_AT = ("SECOND_WARNING", "CAPPED")
NUMBER_HEALTH = Actor(type="system", label="number health")


def pause_on_warning(session: WahaSession, previous: dict[str, Any]) -> None:
    """number_health listener: when WhatsApp's capping of a session reaches SECOND_WARNING (or CAPPED), every
    running campaign that sends through it pauses (audited; a person resumes it). Replies are not affected."""
    now_status = ((session.limits or {}).get("capping") or {}).get("cappingStatus")
    before = ((previous or {}).get("capping") or {}).get("cappingStatus")
    if now_status not in PAUSE_AT or before in PAUSE_AT:
        return
    running = db.session.scalars(
        select(Campaign).where(Campaign.tenant_id == session.tenant_id, Campaign.state.in_(ACTIVE))
    ).all()
    for campaign in running:
        if session.id not in (campaign.session_ids or []):
            continue
        campaign.state = "paused"
        campaign.error = f"Paused: WhatsApp's new-chat capping of a session is at {now_status}."
        audit.record(
            campaign.tenant_id,
            "campaign.pause",
            NUMBER_HEALTH,
            target_type="campaign",
            target_id=campaign.id,
            details={"session_id": session.id, "capping": now_status},
        )


def register() -> None:
    """Plug the campaign and number-health gates and the settle hook into the send queue, and pause campaigns
    when a number nears its cap (idempotent). The opt-out list needs no gate: the send reads it with its session
    lookup and refuses a listed number, which the queue records as skipped ("opted_out")."""
    from portal.services import number_health, outreach

    outreach.register_gate(campaign_gate)
    outreach.register_gate(number_health.new_contact_gate)
    outreach.on_settled(settled)
    number_health.on_change(pause_on_warning)
