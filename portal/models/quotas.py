"""Plans (a named set of limits), a tenant's usage per day (and per session), and the warnings already sent."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, TimestampMixin, UTCDateTime, utcnow


class LimitsMixin:
    """The limits a plan sets and a tenant may override (on the tenant, None = the plan's value). A plan's None
    is "no limit"."""

    max_sessions: Mapped[int | None] = mapped_column(Integer)
    max_messages_per_day: Mapped[int | None] = mapped_column(Integer)
    max_messages_per_month: Mapped[int | None] = mapped_column(Integer)
    max_campaign_recipients_per_month: Mapped[int | None] = mapped_column(Integer)
    max_media_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_api_requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    max_team_seats: Mapped[int | None] = mapped_column(Integer)
    max_webhook_endpoints: Mapped[int | None] = mapped_column(Integer)


LIMIT_COLUMNS = tuple(LimitsMixin.__annotations__)


class Plan(LimitsMixin, TimestampMixin, Base):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class QuotaUsage(Base):
    """What a tenant used on a (UTC) day: `session_id` "" is the tenant's total, else one session's share."""

    __tablename__ = "quota_usage"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "session_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    session_id: Mapped[str] = mapped_column(String(64), default="")
    messages: Mapped[int] = mapped_column(Integer, default=0)
    campaign_recipients: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class QuotaWarning(Base):
    """One warning (80 or 100 %) of one periodic limit in one period: the unique key makes it once."""

    __tablename__ = "quota_warnings"
    __table_args__ = (UniqueConstraint("tenant_id", "quota", "period", "level"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    quota: Mapped[str] = mapped_column(String(40))
    period: Mapped[str] = mapped_column(String(10))
    level: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
