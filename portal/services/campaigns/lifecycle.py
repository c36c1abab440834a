"""Creating a campaign, importing its audience (a job), and pausing, resuming and cancelling it.

Creation validates everything that can be known before the audience is read (sessions, template variables
against the CSV's columns, attachment, schedule) and refuses bad input with nothing stored. The CSV itself is
read by a job (`import_audience`) while the campaign shows "importing" with its progress; its recipients and
rejected rows are written in one transaction, so a crash leaves the campaign importing with no recipients, and
the job run again starts from scratch. Sending is `dispatch`'s part.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import (
    Campaign,
    CampaignRecipient,
    CampaignReject,
    QueuedSend,
    Tenant,
    WahaSession,
    get_for_tenant,
    utcnow,
)
from portal.services import audit, optouts, quotas
from portal.services.audit import Actor
from portal.services.campaigns import audience
from portal.services.campaigns.templates import clean_template
from portal.services.errors import Conflict, Invalid, NotFound
from portal.services.messages.validation import clean_media

log = logging.getLogger(__name__)

SESSIONS_MAX = 10
NAME_MAX = 200
DAILY_CAP_MAX = 100_000
INLINE_MEDIA_MAX = 1024 * 1024
_HHMM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
ACTIVE = ("scheduled", "checking", "running")


def get_campaign(tenant: Tenant, campaign_id: Any) -> Campaign:
    """The tenant's campaign; NotFound("campaign_not_found") for another tenant's or an unknown id."""
    campaign = get_for_tenant(db.session, Campaign, tenant.id, campaign_id)
    if campaign is None:
        raise NotFound(N_("No such campaign."), code="campaign_not_found")
    return campaign


def list_campaigns(tenant: Tenant, *, limit: int = 100) -> list[Campaign]:
    """The tenant's campaigns, newest first."""
    stmt = Campaign.scoped(tenant.id).order_by(Campaign.id.desc()).limit(limit)
    return list(db.session.scalars(stmt))


def _minutes(value: Any, field: str) -> int | None:
    if value in (None, ""):
        return None
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None:
        raise Invalid.field(field, N_("Give a time of day as HH:MM (UTC)."))
    return int(match.group(1)) * 60 + int(match.group(2))


def _sessions(tenant: Tenant, session_ids: Any) -> list[str]:
    if isinstance(session_ids, str):
        session_ids = [session_ids]
    if not isinstance(session_ids, list | tuple) or not session_ids or len(session_ids) > SESSIONS_MAX:
        raise Invalid.field(
            "sessionIds", N_f("Choose between 1 and %(SESSIONS_MAX)s sessions.", SESSIONS_MAX=SESSIONS_MAX)
        )
    wanted = list(dict.fromkeys(str(s) for s in session_ids))
    found = set(
        db.session.scalars(select(WahaSession.id).where(WahaSession.tenant_id == tenant.id, WahaSession.id.in_(wanted)))
    )
    missing = [s for s in wanted if s not in found]
    if missing:
        raise NotFound(N_("No such session."), code="session_not_found", details={"sessionIds": missing})
    return wanted


def create_campaign(
    tenant: Tenant,
    actor: Actor,
    *,
    name: Any,
    session_ids: Any,
    template: Any,
    csv_content: bytes | None = None,
    tag: str | None = None,
    media: dict[str, Any] | None = None,
    start_at: datetime | None = None,
    quiet_start: Any = None,
    quiet_end: Any = None,
    daily_cap: Any = None,
) -> Campaign:
    """Check and store a campaign, then queue the import of its audience (a CSV, or the contacts with `tag`).
    Audited as campaign.create. Invalid (code "unknown_variable") when the template uses a variable the audience
    lacks; nothing is stored or queued on any refusal."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > NAME_MAX:
        raise Invalid.field(
            "name", N_f("Give the campaign a name of at most %(NAME_MAX)s characters.", NAME_MAX=NAME_MAX)
        )
    sessions = _sessions(tenant, session_ids)
    if (csv_content is None) == (not tag):
        raise Invalid.field("csv", N_("Give the audience either as a CSV file or as a contact tag."))
    # the audience (its data lines, when a file) must fit the month's remaining campaign recipients
    quotas.check_recipients_left(tenant, quotas.data_lines(csv_content) if csv_content is not None else 1)
    if csv_content is not None:
        columns = audience.read_header(csv_content)
        audience_info: dict[str, Any] = {"kind": "csv", "columns": columns}
    else:
        tag = " ".join(str(tag).split())
        if not tag or len(tag) > 40:
            raise Invalid.field("tag", N_("Give a contact tag of at most 40 characters."))
        columns = list(audience.TAG_VARIABLES)
        audience_info = {"kind": "tag", "tag": tag, "columns": columns}
    text, used = clean_template(template, columns)
    if media is not None:
        clean_media(media)
        if len(str(media.get("data") or "")) * 3 // 4 > INLINE_MEDIA_MAX:
            # every queued message carries its media: a large file goes by URL, which WAHA downloads itself
            raise Invalid.field("media", N_("An uploaded attachment may be at most 1 MB; give a larger file by URL."))
    quiet = (_minutes(quiet_start, "quietStart"), _minutes(quiet_end, "quietEnd"))
    if (quiet[0] is None) != (quiet[1] is None) or (quiet[0] is not None and quiet[0] == quiet[1]):
        raise Invalid.field("quietEnd", N_("Give both ends of the quiet hours, and two different times."))
    cap = _cap(daily_cap)
    if start_at is not None and start_at.tzinfo is None:
        raise Invalid.field("startAt", N_("Give the start time with its time zone."))
    campaign = Campaign(
        tenant_id=tenant.id,
        name=name.strip(),
        state="importing",
        session_ids=sessions,
        template=text,
        variables=used,
        media=media,
        audience=audience_info,
        start_at=start_at,
        quiet_start=quiet[0],
        quiet_end=quiet[1],
        daily_cap=cap,
        created_by=actor.label,
    )
    if csv_content is not None:
        from portal.storage import storage

        key = f"campaigns/{tenant.id}/{uuid.uuid4().hex}.csv"
        storage().save(key, csv_content, "text/csv")
        audience_info["key"] = key
    db.session.add(campaign)
    db.session.flush()
    audit.record(
        tenant.id,
        "campaign.create",
        actor,
        target_type="campaign",
        target_id=campaign.id,
        details={"name": campaign.name, "sessions": sessions, "audience": audience_info.get("kind")},
    )
    db.session.commit()
    from portal import queue

    queue.enqueue(queue.JOB_IMPORT_CAMPAIGN, campaign.id)
    return campaign


def _cap(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        cap = int(value)
    except (TypeError, ValueError):
        cap = 0
    if isinstance(value, bool) or not 1 <= cap <= DAILY_CAP_MAX:
        raise Invalid.field("dailyCap", N_f("The daily cap is a whole number from 1 to %(max)s.", max=DAILY_CAP_MAX))
    return cap


def _progress(campaign_id: int, done: int) -> None:
    db.session.execute(update(Campaign).where(Campaign.id == campaign_id).values(progress=done))
    db.session.commit()


def import_audience(campaign_id: int) -> None:
    """Read and validate the campaign's audience and write its recipients and rejected rows in one
    transaction; then the campaign is scheduled. A file that cannot be read at all fails the campaign. A tag's
    contacts are read and written a batch at a time (audience.tagged_batches), in the same transaction."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.state != "importing":
        return
    tenant_id = campaign.tenant_id
    info = dict(campaign.audience or {})
    used = list(campaign.variables or [])
    sessions = list(campaign.session_ids or [])

    def listed(chat_ids: set[str]) -> set[str]:
        return optouts.opted_out_among(tenant_id, chat_ids)

    batches: Iterable[audience.Validated]
    taken: list[quotas.Taken | None] = []
    try:
        if info.get("kind") == "csv":
            from portal.storage import storage

            with storage().open(info["key"]) as handle:
                content = handle.read()
            batches = [audience.validate_csv(content, used, listed, lambda n: _progress(campaign_id, n))]
        else:
            batches = audience.tagged_batches(tenant_id, info.get("tag", ""))
        total = accepted = rejected = 0
        now = utcnow()
        tenant = db.session.get(Tenant, tenant_id)
        limit = quotas.limit_of(tenant, "campaign_recipients_per_month") if tenant is not None else None
        for result in batches:
            # the month's campaign allowance, batch by batch: a batch past it fails the whole import
            taken.append(quotas.take_recipients(tenant_id, limit, len(result.rows)))
            recipients = [
                {
                    "campaign_id": campaign_id,
                    "line": row.line,
                    "chat_id": row.chat_id,
                    "values": row.values,
                    "session_id": sessions[(accepted + i) % len(sessions)],
                    "state": "pending",
                    "updated_at": now,
                }
                for i, row in enumerate(result.rows)
            ]
            rejects = [
                {"campaign_id": campaign_id, "line": line, "phone": phone, "reason": reason, "detail": detail}
                for line, phone, reason, detail in result.rejects
            ]
            _bulk_insert(CampaignRecipient, recipients)
            _bulk_insert(CampaignReject, rejects)
            total, accepted, rejected = total + result.total, accepted + len(recipients), rejected + len(rejects)
    except (Invalid, quotas.QuotaExceeded) as exc:
        db.session.rollback()
        for units in taken:
            quotas.give_back(units)
        campaign = db.session.get(Campaign, campaign_id)
        if campaign is not None:
            campaign.state, campaign.error = "failed", exc.message
            db.session.commit()
        _drop_file(info)
        return
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.state != "importing":
        db.session.rollback()
        return
    campaign.total_rows, campaign.progress = total, total
    campaign.accepted, campaign.rejected = accepted, rejected
    campaign.state = "scheduled" if accepted else "completed"
    if not accepted:
        campaign.finished_at = now
    db.session.commit()
    _drop_file(info)


def _bulk_insert(model: Any, rows: list[dict[str, Any]]) -> None:
    """Write many rows in the open transaction: COPY on PostgreSQL (a 100,000-row audience in a second or two,
    where INSERTs take many), an executemany elsewhere."""
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        db.session.execute(insert(model), rows)
        return
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {model.__tablename__} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(v) if isinstance(v, dict) else v for v in (row[c] for c in columns)])


def _drop_file(info: dict[str, Any]) -> None:
    """The uploaded CSV is read once: gone after the import (its rows live on as recipients and rejects)."""
    if info.get("kind") == "csv" and info.get("key"):
        from portal.storage import storage

        storage().delete(info["key"])


def _change(tenant: Tenant, actor: Actor, campaign_id: Any, action: str, allowed: tuple[str, ...]) -> Campaign:
    campaign = get_campaign(tenant, campaign_id)
    if campaign.state not in allowed:
        raise Conflict(
            N_f("A campaign that is %(state)s cannot be %(action)sd.", state=campaign.state, action=action),
            code="campaign_not_ready",
            details={"state": campaign.state, "expected": list(allowed)},
        )
    before = campaign.state
    if action == "pause":
        campaign.state = "paused"
    elif action == "resume":
        pending = db.session.scalar(
            select(CampaignRecipient.id).where(
                CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "pending"
            )
        )
        campaign.state = "scheduled" if campaign.started_at is None else ("checking" if pending else "running")
    else:
        campaign.state, campaign.finished_at = "cancelled", utcnow()
        db.session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "pending")
            .values(state="skipped", reason="cancelled", updated_at=utcnow())
        )
        _cancel_queued(campaign.id)
    audit.record(
        tenant.id,
        f"campaign.{action}",
        actor,
        target_type="campaign",
        target_id=campaign.id,
        details={"before": before, "after": campaign.state},
    )
    db.session.commit()
    if action == "resume":
        from portal import queue

        queue.enqueue(queue.JOB_START_CAMPAIGN, campaign.id)
    return campaign


def _cancel_queued(campaign_id: int) -> None:
    """Take the campaign's messages still waiting in the send queue out of it, with their recipients, in the
    caller's transaction (one being sent right now finishes, and its outcome is recorded as usual)."""
    recipients = select(CampaignRecipient.id).where(
        CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == "queued"
    )
    cancelled = db.session.scalars(
        update(QueuedSend)
        .where(QueuedSend.origin == "campaign", QueuedSend.origin_id.in_(recipients), QueuedSend.state == "queued")
        .values(state="cancelled", last_error="campaign_cancelled", updated_at=utcnow())
        .returning(QueuedSend.origin_id)
        .execution_options(synchronize_session=False)
    ).all()
    if cancelled:
        db.session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.id.in_(cancelled), CampaignRecipient.state == "queued")
            .values(state="skipped", reason="cancelled", updated_at=utcnow())
        )


def pause_campaign(tenant: Tenant, actor: Actor, campaign_id: Any) -> Campaign:
    """Stop sending (queued messages wait; nothing is lost); audited as campaign.pause."""
    return _change(tenant, actor, campaign_id, "pause", ACTIVE)


def resume_campaign(tenant: Tenant, actor: Actor, campaign_id: Any) -> Campaign:
    """Go on where the campaign stopped; audited as campaign.resume."""
    return _change(tenant, actor, campaign_id, "resume", ("paused",))


def cancel_campaign(tenant: Tenant, actor: Actor, campaign_id: Any) -> Campaign:
    """End the campaign: what is not sent yet never will be (reported as skipped, "cancelled"); audited."""
    return _change(tenant, actor, campaign_id, "cancel", (*ACTIVE, "paused", "importing", "draft"))
