"""What a campaign has done: counts by outcome, a chart over time, and the per-recipient export (streamed)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import aliased

from portal.extensions import db
from portal.models import Campaign, CampaignRecipient, CampaignReject, Message
from portal.services.campaigns.audience import OPTED_OUT
from portal.services.exports.stream import csv_chunks, guard

_DELIVERED = ("DEVICE", "READ", "PLAYED")
_READ = ("READ", "PLAYED")


def _replied() -> Any:
    """A recipient answered: an inbound message in the chat, through the session, after the campaign's message."""
    answer = aliased(Message)
    return (
        select(answer.id)
        .where(
            answer.session_id == CampaignRecipient.session_id,
            answer.chat_id == CampaignRecipient.chat_id,
            answer.direction == "in",
            answer.created_at >= CampaignRecipient.sent_at,
        )
        .correlate(CampaignRecipient)
        .exists()
    )


@dataclass
class Counts:
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0
    failed: int = 0
    skipped: int = 0
    opted_out: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def counts(campaign: Campaign) -> Counts:
    """The campaign's recipients by outcome (sent includes delivered, read and replied; skipped and opted out
    include the audience rows refused at import)."""
    r = CampaignRecipient
    sent = r.state == "sent"
    stmt = (
        select(
            func.count().filter(r.state.in_(("pending", "queued"))),
            func.count().filter(sent),
            func.count().filter(and_(sent, Message.status.in_(_DELIVERED))),
            func.count().filter(and_(sent, Message.status.in_(_READ))),
            func.count().filter(and_(sent, _replied())),
            func.count().filter(r.state == "failed"),
            func.count().filter(r.state == "skipped"),
            func.count().filter(r.state == "opted_out"),
        )
        .select_from(r)
        .outerjoin(Message, Message.id == r.message_id)
        .where(r.campaign_id == campaign.id)
    )
    row = db.session.execute(stmt).one()
    listed = CampaignReject.reason == OPTED_OUT
    rejected = db.session.execute(
        select(func.count().filter(listed), func.count().filter(~listed)).where(
            CampaignReject.campaign_id == campaign.id
        )
    ).one()
    return Counts(
        queued=row[0],
        sent=row[1],
        delivered=row[2],
        read=row[3],
        replied=row[4],
        failed=row[5],
        skipped=row[6] + rejected[1],
        opted_out=row[7] + rejected[0],
    )


@dataclass
class Chart:
    """A server-rendered line chart: cumulative sent and failed over the campaign's time."""

    width: int
    height: int
    sent: str  # SVG polyline points
    failed: str
    start: datetime | None
    end: datetime | None
    top: int


def chart(campaign: Campaign, *, width: int = 600, height: int = 160, buckets: int = 60) -> Chart:
    """Sends over time, in up to `buckets` steps from the first send to the last (or now)."""
    r = CampaignRecipient
    bounds = db.session.execute(
        select(func.min(r.sent_at), func.max(r.updated_at)).where(
            r.campaign_id == campaign.id, r.state.in_(("sent", "failed"))
        )
    ).one()
    start, end = bounds
    if start is None or end is None:
        return Chart(width, height, "", "", None, None, 0)
    span = max((end - start).total_seconds(), 1.0)
    step = span / buckets
    sent = [0] * (buckets + 1)
    failed = [0] * (buckets + 1)
    stmt = select(r.state, func.coalesce(r.sent_at, r.updated_at)).where(
        r.campaign_id == campaign.id, r.state.in_(("sent", "failed"))
    )
    for state, when in db.session.execute(stmt):
        index = min(int((when - start).total_seconds() / step), buckets)
        (sent if state == "sent" else failed)[index] += 1
    top = max(sum(sent), sum(failed), 1)

    def points(values: list[int]) -> str:
        total, out = 0, []
        for i, value in enumerate(values):
            total += value
            out.append(f"{i * width / buckets:.1f},{height - total * height / top:.1f}")
        return " ".join(out)

    return Chart(width, height, points(sent), points(failed), start, end, top)


CSV_BATCH = 500  # rows per chunk of the campaign CSVs
_STATUS = case((CampaignRecipient.state == "sent", Message.status), else_=None)


def export_rows(campaign: Campaign) -> Iterator[str]:
    """The per-recipient CSV, in chunks (recipients in audience order, then the refused rows). Text the audience
    file brought (a refused row's phone as written, the reason's detail) is kept from running as a formula."""
    r = CampaignRecipient
    recipients = (
        select(r.line, r.chat_id, r.session_id, r.state, r.reason, _STATUS, r.sent_at, _replied())
        .outerjoin(Message, Message.id == r.message_id)
        .where(r.campaign_id == campaign.id)
        .order_by(r.line)
        .execution_options(yield_per=CSV_BATCH)
    )
    rejects = (
        select(CampaignReject.line, CampaignReject.phone, CampaignReject.reason)
        .where(CampaignReject.campaign_id == campaign.id)
        .order_by(CampaignReject.line)
        .execution_options(yield_per=CSV_BATCH)
    )

    def recipient(row: Any) -> list[Any]:
        line, chat_id, session_id, state, reason, status, sent_at, replied = row
        phone = "+" + chat_id.removesuffix("@c.us")
        sent = sent_at.isoformat() if sent_at else ""
        answered = "yes" if replied and state == "sent" else ""
        return [line, phone, session_id, state, reason or "", status or "", sent, answered]

    def reject(row: Any) -> list[Any]:
        line, phone, reason = row
        state = "opted_out" if reason == OPTED_OUT else "rejected"
        return [line, guard(phone) or "", "", state, guard(reason), "", "", ""]

    def batches() -> Iterator[list[list[Any]]]:  # each statement runs once the CSV gets to its rows
        for batch in db.session.execute(recipients).partitions():
            yield [recipient(row) for row in batch]
        for batch in db.session.execute(rejects).partitions():
            yield [reject(row) for row in batch]

    header = ["line", "phone", "session_id", "state", "reason", "message_status", "sent_at", "replied"]
    return csv_chunks(header, batches(), list)


def error_report(campaign: Campaign) -> Iterator[str]:
    """The audience rows that were not accepted: line, phone as written, reason, detail (the file's own text kept
    from running as a formula)."""
    stmt = (
        select(CampaignReject.line, CampaignReject.phone, CampaignReject.reason, CampaignReject.detail)
        .where(CampaignReject.campaign_id == campaign.id)
        .order_by(CampaignReject.line)
        .execution_options(yield_per=CSV_BATCH)
    )

    def reject(row: Any) -> list[Any]:
        return [row[0], guard(row[1]) or "", guard(row[2]), guard(row[3]) or ""]

    return csv_chunks(["line", "phone", "reason", "detail"], db.session.execute(stmt).partitions(), reject)
