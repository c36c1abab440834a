"""Whole-tenant exports: a job builds a ZIP of the tenant's data into portal storage; it can be downloaded from
Administration until it expires."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, BigId, TenantScoped, UTCDateTime, utcnow

# queued (the job is waiting), running, ready (downloadable until expires_at), failed, expired (file deleted)
EXPORT_STATES = ("queued", "running", "ready", "failed", "expired")


class TenantExport(TenantScoped, Base):
    __tablename__ = "tenant_exports"
    __table_args__ = (Index("ix_tenant_exports_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(10), default="queued")
    requested_by: Mapped[str | None] = mapped_column(String(254))
    storage_key: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
