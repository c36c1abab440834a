"""Whole-tenant exports: a job builds one ZIP of everything the tenant holds (settings, members, sessions without
their secrets, contacts, chats and notes, messages, send queue, campaigns, opt-outs, webhook endpoints without
their secrets, the audit log, and the stored media files), keeps it in portal storage and marks it ready; owners
and admins download it from Administration until it expires (TENANT_EXPORT_TTL_HOURS), after which the upkeep job
deletes the file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.i18n import N_
from portal.models import (
    AuditEvent,
    Campaign,
    CampaignRecipient,
    Chat,
    ChatNote,
    Contact,
    Membership,
    Message,
    OptOut,
    OptOutSettings,
    OutreachSettings,
    QueuedSend,
    Tenant,
    TenantExport,
    User,
    WahaSession,
    WebhookEndpoint,
    get_for_tenant,
    utcnow,
)
from portal.queue import JOB_EXPORT_TENANT, QUEUE_MAINTENANCE, enqueue
from portal.services import audit, retention
from portal.services.audit import Actor
from portal.services.errors import Conflict, NotFound, ServiceError
from portal.services.privacy.archive import Archive, file_name, row
from portal.storage.serving import StoredFile

log = logging.getLogger(__name__)

PAGE = 1000
_SESSION_SECRETS = ("hmac_key", "webhook_secret")


class ExportExpired(ServiceError):
    """The export's download link has expired (its file is deleted)."""

    status = 410
    code = "export_expired"


def _paged(
    model: Any, *conditions: Any, skip: tuple[str, ...] = (), media: list[tuple[str, str]] | None = None
) -> Iterator[dict]:
    after: Any = None  # ids are numbers, sessions' are text: the first page has no lower bound
    while True:
        stmt = select(model).where(*conditions).order_by(model.id).limit(PAGE)
        page = list(db.session.scalars(stmt if after is None else stmt.where(model.id > after)))
        for obj in page:
            item = row(obj, skip=skip)
            if media is not None and isinstance(getattr(obj, "media", None), dict) and obj.media.get("key"):
                item["file"] = f"media/{obj.id}-{file_name(str(obj.media['key']), 'file')}"
                media.append((item["file"], str(obj.media["key"])))
            yield item
            db.session.expunge(obj)
        if len(page) < PAGE:
            return
        after = page[-1].id


def _one(model: Any, tenant_id: int) -> dict[str, Any] | None:
    found = db.session.get(model, tenant_id)
    return row(found) if found is not None else None


def request_export(tenant: Tenant, actor: Actor) -> TenantExport:
    """Queue a new export of the whole tenant (one at a time: Conflict while one is being built)."""
    busy = db.session.scalar(
        select(TenantExport.id).where(
            TenantExport.tenant_id == tenant.id, TenantExport.state.in_(("queued", "running"))
        )
    )
    if busy is not None:
        raise Conflict(N_("An export of this tenant is already being built."), code="export_in_progress")
    export = TenantExport(tenant_id=tenant.id, state="queued", requested_by=actor.label)
    db.session.add(export)
    db.session.flush()
    audit.record(tenant.id, "tenant.export_request", actor, target_type="tenant_export", target_id=export.id)
    db.session.commit()
    enqueue(JOB_EXPORT_TENANT, export.id, queue=QUEUE_MAINTENANCE)
    return export


def list_exports(tenant: Tenant, limit: int = 10) -> list[TenantExport]:
    return list(
        db.session.scalars(
            select(TenantExport)
            .where(TenantExport.tenant_id == tenant.id)
            .order_by(TenantExport.id.desc())
            .limit(limit)
        )
    )


def _write(archive: Archive, tenant: Tenant) -> dict[str, int]:
    tid = tenant.id
    members = db.session.execute(
        select(User.email, User.name, Membership.role, Membership.created_at)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tid)
    ).all()
    kept = retention.of_tenant(tenant)
    archive.json(
        "tenant.json",
        {
            "tenant": row(tenant),
            "retentionApplied": {"messagesDays": kept.messages, "mediaDays": kept.media, "eventsDays": kept.events},
            "members": [{"email": e, "name": n, "role": r, "since": s} for e, n, r, s in members],
            "outreachSettings": _one(OutreachSettings, tid),
            "optOutSettings": _one(OptOutSettings, tid),
        },
    )
    counts: dict[str, int] = {}
    media: list[tuple[str, str]] = []
    counts["sessions"] = archive.json_list(
        "sessions.json", _paged(WahaSession, WahaSession.tenant_id == tid, skip=_SESSION_SECRETS)
    )
    counts["contacts"] = archive.json_list("contacts.json", _paged(Contact, Contact.tenant_id == tid))
    counts["chats"] = archive.json_list("chats.json", _paged(Chat, Chat.tenant_id == tid))
    counts["notes"] = archive.json_list("chat_notes.json", _paged(ChatNote, ChatNote.tenant_id == tid))
    counts["messages"] = archive.json_list(
        "messages.json", _paged(Message, Message.tenant_id == tid, skip=("idempotency_key",), media=media)
    )
    counts["send_queue"] = archive.json_list("send_queue.json", _paged(QueuedSend, QueuedSend.tenant_id == tid))
    counts["campaigns"] = archive.json_list("campaigns.json", _paged(Campaign, Campaign.tenant_id == tid))
    campaign_ids = select(Campaign.id).where(Campaign.tenant_id == tid)
    counts["campaign_recipients"] = archive.json_list(
        "campaign_recipients.json", _paged(CampaignRecipient, CampaignRecipient.campaign_id.in_(campaign_ids))
    )
    counts["opt_outs"] = archive.json_list("opt_outs.json", _paged(OptOut, OptOut.tenant_id == tid))
    counts["webhook_endpoints"] = archive.json_list(
        "webhook_endpoints.json", _paged(WebhookEndpoint, WebhookEndpoint.tenant_id == tid, skip=("secret",))
    )
    counts["audit_events"] = archive.json_list("audit_log.json", _paged(AuditEvent, AuditEvent.tenant_id == tid))
    for name, key in media:
        archive.stored_file(name, key)
    counts["files"] = archive.files
    archive.json(
        "manifest.json",
        {"exportedAt": utcnow(), "tenant": tenant.slug, "counts": counts, "missingFiles": len(archive.missing)},
    )
    return counts


def build_export(export_id: int) -> str:
    """The job: build the export's ZIP, keep it in portal storage, mark it ready (or failed, with the reason)."""
    from portal.storage import new_key, storage

    export = db.session.get(TenantExport, export_id)
    if export is None or export.state not in ("queued", "running"):
        return "skipped"
    tenant = db.session.get(Tenant, export.tenant_id)
    if tenant is None:
        return "skipped"
    export.state = "running"
    db.session.commit()
    archive = Archive(prefix=f"tenant-{tenant.id}-export-")
    try:
        counts = _write(archive, tenant)
        path = archive.close()
        key = new_key(tenant.id, "exports", ".zip")
        with open(path, "rb") as source:
            size = storage().put(key, source, "application/zip")
    except Exception as exc:
        db.session.rollback()
        log.exception("export %s failed", export_id)
        export = db.session.get(TenantExport, export_id)
        if export is not None:
            export.state, export.error, export.finished_at = "failed", f"{type(exc).__name__}"[:500], utcnow()
            db.session.commit()
        return "failed"
    finally:
        archive.discard()
    now = utcnow()
    export = db.session.get(TenantExport, export_id)
    if export is None:
        return "skipped"
    export.state, export.storage_key, export.size, export.finished_at = "ready", key, size, now
    export.expires_at = now + timedelta(hours=int(current_app.config["TENANT_EXPORT_TTL_HOURS"]))
    audit.record(
        export.tenant_id,
        "tenant.export_ready",
        audit.SYSTEM,
        target_type="tenant_export",
        target_id=export.id,
        details={"size": size, **counts},
    )
    db.session.commit()
    return "ready"


def export_file(tenant: Tenant, export_id: Any, actor: Actor) -> StoredFile:
    """The export's file to download (audited as tenant.export_download): NotFound for another tenant's or one
    not ready, ExportExpired (410) once its link has expired."""
    export = get_for_tenant(db.session, TenantExport, tenant.id, export_id)
    if export is None or export.state not in ("ready", "expired"):
        raise NotFound(N_("No such export ready to download."), code="export_not_found")
    if export.state == "expired" or (export.expires_at is not None and export.expires_at <= utcnow()):
        raise ExportExpired(N_("This export's link has expired; ask for a new export."))
    audit.record(
        tenant.id, "tenant.export_download", actor, target_type="tenant_export", target_id=export.id, commit=True
    )
    stamp = (export.finished_at or export.created_at).strftime("%Y%m%d-%H%M")
    return StoredFile(
        key=str(export.storage_key), mimetype="application/zip", download_name=f"{tenant.slug}-export-{stamp}.zip"
    )


def expire_exports(now: datetime) -> int:
    """Delete the files of exports whose link has expired; how many."""
    from portal.services.media_files import delete_files

    due = list(
        db.session.scalars(select(TenantExport).where(TenantExport.state == "ready", TenantExport.expires_at <= now))
    )
    keys = [e.storage_key for e in due if e.storage_key]
    for export in due:
        export.state, export.storage_key = "expired", None
    db.session.commit()
    delete_files(k for k in keys if k)
    return len(due)
