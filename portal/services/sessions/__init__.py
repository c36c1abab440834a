"""WhatsApp sessions of a tenant: create, control, sync, QR and pairing, each call checked against the tenant.

Every function takes the tenant and only ever touches that tenant's rows; another tenant's session is simply
not found. WAHA is reached through `portal.services.servers.client_for`; its typed errors become ServiceErrors
in one place (`portal.services.waha_errors.map_waha_error`, re-exported here).

The package, one responsibility per module:

- `validation`: what a tenant may ask for (name, engine, webhook, config) and the WAHA name of a new session;
- `waha_config`: the WAHA session config built from ours (metadata, the portal's signed webhook);
- `reading`: one session or the list of a tenant's sessions;
- `qr_cache`: the Redis key of the cached QR, dropped on every status change;
- `status`: recording a status WAHA reported, and syncing one or all sessions with WAHA;
- `lifecycle`: create, start, stop, restart, log out and delete;
- `deletion`: deleting a session's rows in the event workers' lock order, so a delete converges;
- `qr`: the QR code, the pairing code and the screenshot;
- `watch`: the live block of a session's page (`watch_session`).
"""

from __future__ import annotations

from portal.services.audit import SYSTEM, Actor
from portal.services.recipients import phone_digits
from portal.services.sessions.deletion import SessionBusy
from portal.services.sessions.lifecycle import (
    create_session,
    delete_session,
    logout_session,
    restart_session,
    start_session,
    stop_session,
)
from portal.services.sessions.passkey import (
    PASSKEY_STATUSES,
    clean_assertion,
    confirm_passkey,
    passkey_step,
    submit_passkey,
)
from portal.services.sessions.qr import (
    QR_FIRST_LIFETIME,
    QR_LOCK_SECONDS,
    QR_NEXT_LIFETIME,
    QR_WAIT_SECONDS,
    QrCode,
    get_qr,
    get_screenshot,
    request_pairing_code,
)
from portal.services.sessions.qr_cache import QR_CACHE_SECONDS, drop_qr_cache
from portal.services.sessions.reading import get_session, list_sessions, session_names
from portal.services.sessions.status import apply_status, sync_all_sessions, sync_session
from portal.services.sessions.validation import (
    DEFAULT_WEBHOOK_EVENTS,
    EXTERNAL_NAME_RE,
    METADATA_MAX_ENTRIES,
    METADATA_PREFIX,
    NAME_MAX,
    TENANT_CONFIG_KEYS,
    WAHA_EVENTS,
    external_name_for,
)
from portal.services.sessions.waha_config import PORTAL_WEBHOOK_RETRIES, waha_config_for, webhook_url_for
from portal.services.sessions.watch import (
    SETTLED_SYNC_SECONDS,
    TRANSITIONAL,
    WATCH_SYNC_SECONDS,
    failed_waiting_for_scan,
    watch_session,
)
from portal.services.waha_errors import map_waha_error

__all__ = [
    "DEFAULT_WEBHOOK_EVENTS",
    "EXTERNAL_NAME_RE",
    "METADATA_MAX_ENTRIES",
    "METADATA_PREFIX",
    "NAME_MAX",
    "PASSKEY_STATUSES",
    "PORTAL_WEBHOOK_RETRIES",
    "QR_CACHE_SECONDS",
    "QR_FIRST_LIFETIME",
    "QR_LOCK_SECONDS",
    "QR_NEXT_LIFETIME",
    "QR_WAIT_SECONDS",
    "SETTLED_SYNC_SECONDS",
    "SYSTEM",
    "TENANT_CONFIG_KEYS",
    "TRANSITIONAL",
    "WAHA_EVENTS",
    "WATCH_SYNC_SECONDS",
    "Actor",
    "QrCode",
    "SessionBusy",
    "apply_status",
    "clean_assertion",
    "confirm_passkey",
    "create_session",
    "delete_session",
    "drop_qr_cache",
    "external_name_for",
    "failed_waiting_for_scan",
    "get_qr",
    "get_screenshot",
    "get_session",
    "list_sessions",
    "session_names",
    "logout_session",
    "map_waha_error",
    "passkey_step",
    "phone_digits",
    "request_pairing_code",
    "restart_session",
    "start_session",
    "stop_session",
    "submit_passkey",
    "sync_all_sessions",
    "sync_session",
    "waha_config_for",
    "watch_session",
    "webhook_url_for",
]
