"""Scheduled upkeep: status sync, recovery after WAHA restarts, orphan reconciliation, retention, the watchdog.

Sync asks each WAHA server for all its sessions in one call and updates every local row of that server in one
pass. A session that should run (desired_state "running") but is STOPPED or missing on WAHA is started again or
re-created from `sessions.waha_config_for` — that is the recovery after a WAHA restart, whose start timestamp
change is logged. WAHA sessions that carry our metadata but have no row are deleted after a grace period.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.orm import defer

from portal.extensions import db, redis_store
from portal.models import AuditEvent, Message, Tenant, WahaServer, WahaSession, WebhookDelivery, WebhookEvent, utcnow
from portal.services import attention, audit, number_health
from portal.services.audit import Actor
from portal.services.events import preassign_ids
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

SYNC = Actor(type="system", label="sync")
RECOVERY = Actor(type="system", label="recovery")
RETENTION = Actor(type="system", label="retention")
ORPHAN_GRACE_SECONDS = 600  # a WAHA session without a row is left alone this long (a create may be in flight)
ORPHANS_KEY = "portal:orphans"
WATCHDOG_SILENCE_SECONDS = 1800
UNOWNED_EVENT_RETENTION_DAYS = 14
PRUNE_CHUNK = 2000


@dataclass
class SyncReport:
    """What one server's sync saw and did."""

    server: str
    listed: int = 0
    changed: int = 0
    started: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


def sync_all(*, delete_orphans: bool = False) -> list[SyncReport]:
    """Sync every enabled server; a server that cannot be reached is reported, the others still sync."""
    reports = []
    servers = list(
        db.session.scalars(select(WahaServer).where(WahaServer.is_enabled.is_(True)).order_by(WahaServer.id))
    )
    for server in servers:
        try:
            reports.append(sync_server(server, delete_orphans=delete_orphans))
        except waha_errors.WahaError as exc:
            db.session.rollback()
            log.warning("sync of WAHA server %s failed: %s", server.name, exc)
            reports.append(SyncReport(server=server.name, error=f"{type(exc).__name__}: {exc}"[:300]))
    return reports


def reconcile() -> list[SyncReport]:
    """Sync with orphan clean-up: WAHA sessions we own but have no row for are deleted after the grace period."""
    return sync_all(delete_orphans=True)


def sync_server(server: WahaServer, *, recover: bool = True, delete_orphans: bool = False) -> SyncReport:
    """One list call to the server, every local row of it updated in one pass, then recovery of what should run.

    That list call is the only WAHA request of a sync with nothing to recover: noticing that WAHA restarted is the
    fleet check's (services.fleet), and recovery does not depend on it, it follows each session's state.
    """
    from portal.services.servers import client_for
    from portal.services.sessions import apply_status

    started = time.perf_counter()
    report = SyncReport(server=server.name)
    client = client_for(server)
    infos = client.list_sessions(all=True)
    report.listed = len(infos)
    by_name = {info.get("name"): info for info in infos if isinstance(info, dict)}
    # The sync reads status and me only; the key and config load on demand for the few rows recovery touches.
    rows = list(
        db.session.scalars(
            select(WahaSession)
            .where(WahaSession.server_id == server.id)
            .options(defer(WahaSession.hmac_key), defer(WahaSession.config))
        )
    )
    known = {row.id for row in rows}
    now = utcnow()
    notices: list[attention.Notice] = []
    limit_notices: list[number_health.Notice] = []
    to_recover: list[tuple[WahaSession, dict[str, Any] | None]] = []
    for row in rows:
        info = by_name.get(row.external_name)
        if info is None and row.desired_state == "deleting":
            continue  # a delete in progress (or to be repeated): never re-create it
        if info is None:
            to_recover.append((row, None))  # WAHA lost it (restart with wiped storage, manual delete)
            continue
        status = info.get("status")
        me = info.get("me") if isinstance(info.get("me"), dict) else None
        if status != row.status or (me is not None and me != row.me) or (status == "SCAN_QR_CODE" and row.me):
            previous = (row.status, row.me)
            if apply_status(row, status, me=me, actor=SYNC, source="sync"):
                report.changed += 1
            notice = attention.evaluate(row, *previous)
            if notice is not None:
                notices.append(notice)
        if status == "WORKING" and (limit_notice := number_health.from_me(row, me, source="sync")) is not None:
            limit_notices.append(limit_notice)  # WAHA put the number's limits in `me`: no call of our own
        if row.desired_state == "running" and status == "STOPPED":
            to_recover.append((row, info))
    # One statement stamps the whole server's rows.
    db.session.execute(
        update(WahaSession)
        .where(WahaSession.server_id == server.id)
        .values(last_synced_at=now)
        .execution_options(synchronize_session=False)
    )
    deliveries = attention.plan_notices(notices)
    preassign_ids(AuditEvent, [o for o in db.session.new if isinstance(o, AuditEvent)])
    db.session.flush()
    delivery_ids = [d.id for d in deliveries]
    db.session.commit()
    attention.send_mails(notices)
    number_health.tell(limit_notices)
    if delivery_ids:
        from portal.services import forwarding

        forwarding.queue_deliveries(delivery_ids)
    if recover:
        for row, info in to_recover:
            _recover(client, row, info, report)
    _track_orphans(client, server, infos, known, report, delete=delete_orphans)
    report.seconds = time.perf_counter() - started
    return report


def _recover(client: Any, row: WahaSession, info: dict | None, report: SyncReport) -> None:
    """Start a STOPPED session that should run, or re-create one WAHA no longer has (stopped ones too)."""
    from portal.services.sessions import apply_status, waha_config_for

    try:
        if info is None:
            run = row.desired_state == "running"
            result = client.create_session(row.external_name, waha_config_for(row), start=run)
            report.recreated.append(row.id)
            action = "session.recreate"
        else:
            result = client.start_session(row.external_name)
            report.started.append(row.id)
            action = "session.recover"
    except waha_errors.WahaAlreadyExists:
        return  # created meanwhile (a user pressed start): the next sync sees it
    except waha_errors.WahaError as exc:
        log.warning("recovery of session %s (%s) failed: %s", row.id, row.external_name, exc)
        db.session.rollback()
        return
    if isinstance(result, dict):
        engine = result.get("engine")
        if isinstance(engine, dict) and isinstance(engine.get("engine"), str):
            row.engine = engine["engine"][:16]
        me = result.get("me") if isinstance(result.get("me"), dict) else None
        apply_status(row, result.get("status"), me=me, actor=RECOVERY, source="recovery")
    audit.record(
        row.tenant_id, action, RECOVERY, target_type="session", target_id=row.id, details={"status": row.status}
    )
    db.session.commit()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _track_orphans(
    client: Any, server: WahaServer, infos: list[dict], known: set[str], report: SyncReport, *, delete: bool
) -> None:
    """Remember when a WAHA session with our metadata but no row was first seen; delete it after the grace."""
    candidates: dict[str, tuple[str, str]] = {}  # server:name -> (WAHA session name, portal session id)
    for info in infos:
        metadata = ((info.get("config") or {}).get("metadata") or {}) if isinstance(info, dict) else {}
        session_id = metadata.get("portal.session_id") if isinstance(metadata, dict) else None
        name = info.get("name") if isinstance(info, dict) else None
        if session_id and session_id not in known and isinstance(name, str):
            candidates[f"{server.id}:{name}"] = (name, session_id)
    if candidates:
        # A row may exist on another server (moved) or have been created since our read.
        existing = set(
            db.session.scalars(
                select(WahaSession.id).where(WahaSession.id.in_([sid for _, sid in candidates.values()]))
            )
        )
        candidates = {k: v for k, v in candidates.items() if v[1] not in existing}
    try:
        store = redis_store.client
        seen = {_text(k): float(v) for k, v in (store.hgetall(ORPHANS_KEY) or {}).items()}
        prefix = f"{server.id}:"
        gone = [k for k in seen if k.startswith(prefix) and k not in candidates]
        if gone:
            store.hdel(ORPHANS_KEY, *gone)
        now = time.time()
        grace = float(current_app.config.get("ORPHAN_GRACE_SECONDS", ORPHAN_GRACE_SECONDS))
        for key, (name, session_id) in candidates.items():
            first = seen.get(key)
            if first is None:
                store.hset(ORPHANS_KEY, key, now)
                first = now
            if delete and now - first >= grace:
                try:
                    client.delete_session(name)
                except waha_errors.WahaError as exc:
                    log.warning("could not delete orphan WAHA session %s: %s", name, exc)
                    continue
                store.hdel(ORPHANS_KEY, key)
                report.orphans_deleted.append(name)
                log.warning(
                    "deleted WAHA session %s on %s: it belongs to no portal session (%s)", name, server.name, session_id
                )
                audit.record(
                    None,
                    "session.orphan_deleted",
                    SYNC,
                    target_type="waha_server",
                    target_id=server.id,
                    details={"external_name": name, "portal_session_id": session_id},
                    commit=True,
                )
    except Exception as exc:
        if isinstance(exc, waha_errors.WahaError):
            raise
        log.warning("orphan tracking skipped: %s", type(exc).__name__)


# ============================================================================================== watchdog


def watchdog(silence: int | None = None) -> list[str]:
    """Probe WORKING sessions that sent no event for `silence` seconds; a null `me` means logged out on the phone.

    Each quiet session is probed at most once per silence window. Returns the ids of sessions found logged out.
    """
    from portal.services.servers import client_for

    silence = int(
        silence if silence is not None else current_app.config.get("WATCHDOG_SILENCE_SECONDS", WATCHDOG_SILENCE_SECONDS)
    )
    cutoff = utcnow() - timedelta(seconds=silence)
    quiet = list(
        db.session.scalars(
            select(WahaSession).where(
                WahaSession.status == "WORKING",
                WahaSession.attention.is_(None),
                (
                    (WahaSession.last_event_at < cutoff)
                    | (WahaSession.last_event_at.is_(None) & (WahaSession.updated_at < cutoff))
                ),
            )
        )
    )
    logged_out = []
    for session in quiet:
        try:
            if not redis_store.client.set(f"portal:watchdog:{session.id}", b"1", nx=True, ex=max(silence, 1)):
                continue
        except Exception:
            pass  # without Redis every run probes; still correct
        try:
            me = client_for(session.server).get_me(session.external_name)
        except waha_errors.WahaNotFound:
            continue  # gone or stopped on WAHA: the sync and recovery handle it
        except waha_errors.WahaError as exc:
            log.info("watchdog could not probe session %s: %s", session.id, exc)
            continue
        if me is None:
            logged_out.append(session.id)
            attention.notify(session, "logged_out")
    db.session.commit()
    return logged_out


# ============================================================================================== retention


def prune(now: Any = None) -> dict[str, int]:
    """Delete what each tenant's retention no longer keeps (services.retention: the tenant's settings, capped by the
    platform's): messages (and their stored files) after the message retention; the stored files of younger
    messages after the media retention (the rows stay, marked); events and delivery attempts after the event
    retention.

    On PostgreSQL messages and events go by whole monthly partitions (services.partitions.prune: a row stays up
    to about a month past its retention); SQLite deletes rows in chunks. Media files go by row on both."""
    from portal.services import partitions, retention
    from portal.services.media_files import delete_files

    now = now or utcnow()
    counts = {"messages": 0, "media_files": 0, "media_expired": 0, "events": 0, "deliveries": 0}
    rows = list(
        db.session.execute(
            select(Tenant.id, Tenant.retention_messages_days, Tenant.retention_media_days, Tenant.retention_events_days)
        )
    )
    kept = {tenant_id: retention.effective_days(m, media, e) for tenant_id, m, media, e in rows}
    tenants = [(tenant_id, k.messages, k.events) for tenant_id, k in kept.items()]
    db.session.commit()  # the partition work runs on connections of its own
    if partitions.enabled():
        # PostgreSQL: messages and events go by whole monthly partitions (services.partitions.prune)
        by_months = partitions.prune(
            now, {t: m for t, m, _ in tenants}, {t: e for t, _, e in tenants}, UNOWNED_EVENT_RETENTION_DAYS
        )
        for name in ("messages", "media_files", "events"):
            counts[name] += by_months[name]
        counts["partitions_dropped"] = by_months["partitions_dropped"]
        for tenant_id, _message_days, event_days in tenants:
            counts["deliveries"] += _prune_deliveries(tenant_id, now - timedelta(days=event_days))
        counts["media_expired"] += _prune_media(kept, now)
        _audit_prune(counts)
        return counts
    for tenant_id, message_days, event_days in tenants:
        message_cutoff = now - timedelta(days=message_days)
        while True:
            found = db.session.execute(
                select(Message.id, Message.media)
                .where(Message.tenant_id == tenant_id, Message.created_at < message_cutoff)
                .limit(PRUNE_CHUNK)
            ).all()
            if not found:
                break
            keys = [str(media["key"]) for _id, media in found if isinstance(media, dict) and media.get("key")]
            db.session.execute(delete(Message).where(Message.id.in_([r[0] for r in found])))
            db.session.commit()
            counts["messages"] += len(found)
            # after the commit: a row never names a deleted file (a file the store keeps is only logged)
            counts["media_files"] += delete_files(keys)
        event_cutoff = now - timedelta(days=event_days)
        counts["deliveries"] += _prune_deliveries(tenant_id, event_cutoff)
        counts["events"] += _delete_chunked(
            WebhookEvent,
            WebhookEvent.received_at,
            event_cutoff,
            WebhookEvent.tenant_id == tenant_id,
            WebhookEvent.status != "pending",
        )
    counts["events"] += _delete_chunked(
        WebhookEvent,
        WebhookEvent.received_at,
        now - timedelta(days=UNOWNED_EVENT_RETENTION_DAYS),
        WebhookEvent.tenant_id.is_(None),
        WebhookEvent.status != "pending",
    )
    counts["media_expired"] += _prune_media(kept, now)
    _audit_prune(counts)
    return counts


def _audit_prune(counts: dict[str, int]) -> None:
    """A run that deleted anything is kept in the platform's audit log, with its counts."""
    if any(counts.values()):
        log.info("retention: deleted %s", counts)
        audit.record(None, "retention.prune", RETENTION, details=counts, commit=True)


def _prune_media(kept: dict[int, Any], now: Any) -> int:
    """Media retention per tenant; a tenant whose files went gets an audit entry with the count and the days."""
    from portal.services import retention

    total = 0
    for tenant_id, days in kept.items():
        files = retention.prune_media(tenant_id, now - timedelta(days=days.media), now)
        if files:
            details = {"files": files, "days": days.media}
            audit.record(tenant_id, "retention.media_expired", RETENTION, target_type="tenant", details=details)
            db.session.commit()
        total += files
    return total


def _prune_deliveries(tenant_id: int, cutoff: Any) -> int:
    return _delete_chunked(
        WebhookDelivery,
        WebhookDelivery.created_at,
        cutoff,
        WebhookDelivery.tenant_id == tenant_id,
        WebhookDelivery.status != "pending",
    )


def _delete_chunked(model: Any, column: Any, cutoff: Any, *conditions: Any) -> int:
    total = 0
    while True:
        ids = list(db.session.scalars(select(model.id).where(column < cutoff, *conditions).limit(PRUNE_CHUNK)))
        if not ids:
            return total
        db.session.execute(delete(model).where(model.id.in_(ids)))
        db.session.commit()
        total += len(ids)
