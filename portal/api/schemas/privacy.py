"""Data protection DTOs of the /waha API: a person's erase (query and answer)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from portal.api.schemas.common import Request, Response


class EraseQuery(Request):
    keepOptOut: bool = Field(
        False,
        description="true: the number stays on the opt-out list (nothing else of the person), so that no campaign "
        "writes to them again.",
    )


class EraseCounts(Response):
    messages: int
    files: int
    chats: int
    notes: int
    queue: int = Field(description="Send queue entries deleted.")
    recipients: int = Field(description="Campaign recipient rows whose number and variables were removed.")
    optOuts: int
    events: int = Field(description="Stored webhook events naming the person.")
    deliveries: int = Field(description="Forwarded copies of those events.")
    contacts: int
    auditRedacted: int = Field(description="Earlier audit entries that named the number, now without it.")


class EraseResponse(Response):
    phone: str = Field(description="The number, masked as the audit log keeps it.")
    erased: EraseCounts
    whatsappChatsDeleted: int = Field(description="Chats WAHA deleted (or no longer had).")
    whatsappChatsFailed: int = Field(description="Chats WAHA could not delete (down, or the session not WORKING).")

    @classmethod
    def of(cls, masked: str, report: Any) -> EraseResponse:
        c = report.counts
        return cls(
            phone=masked,
            erased=EraseCounts(
                messages=c["messages"],
                files=c["files"],
                chats=c["chats"],
                notes=c["notes"],
                queue=c["queue"],
                recipients=c["recipients"],
                optOuts=c["opt_outs"],
                events=c["events"],
                deliveries=c["deliveries"],
                contacts=c["contacts"],
                auditRedacted=c["audit_redacted"],
            ),
            whatsappChatsDeleted=report.waha_deleted,
            whatsappChatsFailed=report.waha_failed,
        )


class TenantExportResponse(Response):
    id: str
    state: str = Field(description="queued, running, ready, failed or expired.")
    size: int | None = Field(None, description="Bytes of the ZIP, once ready.")
    error: str | None = None
    createdAt: str
    finishedAt: str | None = None
    expiresAt: str | None = Field(None, description="When the download link expires (the file is deleted then).")
    downloadUrl: str | None = Field(None, description="The API address of the ZIP, once ready.")

    @classmethod
    def of(cls, export: Any, download_url: str | None) -> TenantExportResponse:
        def when(value: Any) -> str | None:
            return value.isoformat() if value is not None else None

        return cls(
            id=str(export.id),
            state=export.state,
            size=export.size,
            error=export.error,
            createdAt=export.created_at.isoformat(),
            finishedAt=when(export.finished_at),
            expiresAt=when(export.expires_at),
            downloadUrl=download_url if export.state == "ready" else None,
        )


class TenantExportList(Response):
    data: list[TenantExportResponse] = Field(description="The tenant's latest exports, newest first (at most 10).")


class DeletionDto(Request):
    confirm: str = Field(max_length=63, description="The tenant's slug, repeated to confirm.")


class DeletionResponse(Response):
    tenant: str = Field(description="The tenant's slug.")
    scheduledFor: str = Field(description="When the tenant and everything it holds are deleted.")
