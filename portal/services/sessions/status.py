"""A session's status: recording what WAHA reports (with audit and QR cache drop) and syncing with WAHA."""

from __future__ import annotations

import logging
from typing import Any

from portal.extensions import db
from portal.models import Tenant, WahaSession, utcnow
from portal.services import audit, servers
from portal.services.audit import SYSTEM, Actor
from portal.services.errors import ServiceError
from portal.services.sessions.qr_cache import drop_qr_cache
from portal.services.sessions.reading import _client, get_session, list_sessions
from portal.services.waha_errors import map_waha_error
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- status


def apply_status(
    session: WahaSession, status: str | None, *, me: dict | None = None, actor: Actor = SYSTEM, source: str = "sync"
) -> bool:
    """Record a status WAHA reported; True if it changed. Drops the QR cache, stamps status_changed_at and
    audits a change ("session.status"). `me` is stored when given; it is cleared when the session needs a
    new QR. The caller commits.
    """
    if not status:
        return False
    status = str(status)[:32]
    changed = status != session.status
    if me is not None and me != session.me:
        session.me = me
    elif status == "SCAN_QR_CODE" and session.me is not None:
        session.me = None  # waiting for a scan means nobody is logged in
    if status == "SCAN_QR_CODE" or changed:
        # A repeated SCAN_QR_CODE means the QR rotated: the cached image is stale too.
        drop_qr_cache(session.id)
    if not changed:
        return False
    previous = session.status
    session.status = status
    session.status_changed_at = utcnow()
    audit.record(
        session.tenant_id,
        "session.status",
        actor,
        target_type="session",
        target_id=session.id,
        details={"from": previous, "to": status, "source": source},
    )
    return True


def _apply_info(session: WahaSession, info: Any, actor: Actor, source: str) -> None:
    """Take status, me and engine from a WAHA session info body."""
    if not isinstance(info, dict):
        return
    engine = info.get("engine")
    if isinstance(engine, dict) and isinstance(engine.get("engine"), str):
        session.engine = engine["engine"][:16]
    me = info.get("me") if isinstance(info.get("me"), dict) else None
    apply_status(session, info.get("status"), me=me, actor=actor, source=source)


# ---------------------------------------------------------------------------------------------- sync


def sync_session(tenant: Tenant, session_id: Any, actor: Actor = SYSTEM) -> WahaSession:
    """Ask WAHA for the session once and record its status, me and engine, plus last_synced_at.

    When WAHA no longer has the session, the stored status is kept (it is what the user last saw, and the
    recovery job re-creates sessions that should run), the sync time is recorded, and Conflict
    "session_missing_on_waha" (409) tells the caller; starting the session re-creates it. It is not a 404:
    the portal's session exists and its id stays valid.
    """
    session = get_session(tenant, session_id)
    try:
        info = _client(session).get_session(session.external_name)
    except waha_errors.WahaNotFound as exc:
        log.warning(
            "session %s (%s) is missing on WAHA server %s", session.id, session.external_name, session.server.name
        )
        session.last_synced_at = utcnow()
        db.session.commit()
        raise map_waha_error(exc, session) from exc
    except waha_errors.WahaError as exc:
        db.session.rollback()
        raise map_waha_error(exc, session) from exc
    _apply_info(session, info, actor, "sync")
    session.last_synced_at = utcnow()
    db.session.commit()
    return session


def sync_all_sessions(tenant: Tenant, actor: Actor = SYSTEM) -> list[WahaSession]:
    """Refresh every session of the tenant with one list call per WAHA server (not one call per session).

    Sessions WAHA does not list keep their status (as in `sync_session`) and are logged; the recovery job
    deals with them. A server that cannot be reached raises Upstream after the reachable ones were saved.
    """
    rows = list_sessions(tenant)
    by_server: dict[int, list[WahaSession]] = {}
    for row in rows:
        by_server.setdefault(row.server_id, []).append(row)
    failure: ServiceError | None = None
    now = utcnow()
    for group in by_server.values():
        try:
            listed = servers.client_for(group[0].server).list_sessions(all=True)
        except waha_errors.WahaError as exc:
            failure = map_waha_error(exc)
            continue
        infos = {info.get("name"): info for info in listed if isinstance(info, dict)}
        for row in group:
            info = infos.get(row.external_name)
            if info is None:
                log.warning("session %s (%s) is missing on WAHA server %s", row.id, row.external_name, row.server.name)
            else:
                _apply_info(row, info, actor, "sync")
            row.last_synced_at = now
    db.session.commit()
    if failure is not None:
        raise failure
    return rows
