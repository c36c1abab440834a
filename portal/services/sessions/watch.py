"""The live block of a session's page: what a person watching the session sees, synced with WAHA now and then."""

from __future__ import annotations

from typing import Any

import redis

from portal.extensions import redis_store
from portal.i18n import N_
from portal.models import Tenant, WahaSession
from portal.services import audit
from portal.services.errors import ServiceError
from portal.services.sessions.passkey import PASSKEY_STATUSES, passkey_step
from portal.services.sessions.qr import get_qr
from portal.services.sessions.status import sync_session

# Statuses on the way to WORKING: a page showing one keeps polling and syncs with WAHA now and then.
TRANSITIONAL = ("STARTING", "SCAN_QR_CODE", "PASSKEY_REQUIRED", "PASSKEY_CONFIRMATION_REQUIRED")
WATCH_SYNC_SECONDS = 3
# A settled session (WORKING, STOPPED, FAILED) still changes without warning (the phone logs out, WhatsApp
# fails): its watchers ask WAHA too, less often. Webhooks usually tell the portal sooner.
SETTLED_SYNC_SECONDS = 10
SERVER_DOWN = N_("The WhatsApp server cannot be reached right now.")


def watch_session(tenant: Tenant, session: WahaSession, *, may_link: bool = True) -> dict[str, Any]:
    """What a person watching a session sees: its status (synced with WAHA at most every few seconds, across
    all viewers: often while it is on its way to WORKING, less often once settled), its QR when it waits for a
    scan and the watcher may link a phone (`may_link`, see permissions.LINK_PHONE), and whether it is still on
    its way (the page keeps following it in every status).

    Returns {"session", "passkey" (the step while WhatsApp asks for a passkey), "passkey_error", "qr",
    "qr_error", "qr_error_code", "sync_error", "sync_error_code", "qr_expired", "polling", "settled"}; "polling" is
    always true, "settled" tells a status that is not on the way to WORKING.
    """
    sync_error = sync_error_code = qr_error_code = None
    window = WATCH_SYNC_SECONDS if session.status in TRANSITIONAL else SETTLED_SYNC_SECONDS
    if _watch_sync_due(session.id, window):
        try:
            session = sync_session(tenant, session.id)
        except ServiceError as exc:
            sync_error, sync_error_code = exc.message, exc.code
    elif session.server is not None and session.server.health == "down":
        # Between syncs, the server's last health check speaks: every refresh tells the same story while it is down.
        sync_error, sync_error_code = SERVER_DOWN, "waha_unavailable"
    qr = qr_error = None
    if session.status == "SCAN_QR_CODE" and may_link and sync_error_code == "waha_unavailable":
        qr_error, qr_error_code = sync_error, sync_error_code  # no QR to ask a server that does not answer
    elif session.status == "SCAN_QR_CODE" and may_link:
        try:
            qr = get_qr(tenant, session.id)
        except ServiceError as exc:
            # The QR is gone because the session moved on (scanned, failed): read the new state at once.
            try:
                session = sync_session(tenant, session.id)
            except ServiceError:
                pass
            if session.status == "SCAN_QR_CODE":
                qr_error, qr_error_code = exc.message, exc.code
    passkey = passkey_error = None
    if session.status in PASSKEY_STATUSES and may_link:
        try:
            passkey = passkey_step(tenant, session)
        except ServiceError as exc:
            passkey_error = exc.message
    return {
        "session": session,
        "passkey": passkey,
        "passkey_error": passkey_error,
        "qr": qr,
        "qr_error": qr_error,
        "sync_error": sync_error,
        "qr_error_code": qr_error_code,
        "sync_error_code": sync_error_code,
        "qr_expired": failed_waiting_for_scan(session),
        "polling": True,
        "settled": session.status not in TRANSITIONAL,
    }


def failed_waiting_for_scan(session: WahaSession) -> bool:
    """True when the session turned FAILED straight from SCAN_QR_CODE: WAHA gives up after its QR codes
    expired unscanned, which a restart fixes (not a fault of WhatsApp)."""
    if session.status != "FAILED":
        return False
    last = audit.list_events(
        session.tenant_id, audit.AuditFilters(action="session.status", target_id=session.id), limit=1
    )
    details = (last[0].details or {}) if last else {}
    return details.get("from") == "SCAN_QR_CODE" and details.get("to") == "FAILED"


def _watch_sync_due(session_id: str, window: int = WATCH_SYNC_SECONDS) -> bool:
    """True for the first caller in each window (shared across processes through Redis)."""
    try:
        return bool(redis_store.client.set(f"portal:web:sync:{session_id}", "1", nx=True, ex=window))
    except redis.RedisError:  # Redis down: the page still works, it just reads what the database knows
        return False
