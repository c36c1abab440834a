"""Jobs of the maintenance queue: status sync with recovery, reconciliation, watchdog, retention."""

from __future__ import annotations

import logging

from portal.jobs import job
from portal.services import maintenance, number_health

log = logging.getLogger(__name__)


def _summary(reports: list) -> list[dict]:
    return [
        {
            "server": r.server,
            "listed": r.listed,
            "changed": r.changed,
            "started": len(r.started),
            "recreated": len(r.recreated),
            "orphans_deleted": len(r.orphans_deleted),
            "error": r.error,
        }
        for r in reports
    ]


@job
def sync_sessions() -> list[dict]:
    """Sync every session's status (one list call per WAHA server) and recover sessions that should run."""
    return _summary(maintenance.sync_all())


@job
def reconcile() -> list[dict]:
    """Sync, and delete WAHA sessions that belong to no portal session (after a grace period)."""
    return _summary(maintenance.reconcile())


@job
def watchdog() -> list[str]:
    """Probe quiet WORKING sessions; tell tenants about the ones logged out on the phone."""
    return maintenance.watchdog()


@job
def prune() -> dict:
    """Apply the tenants' retention settings."""
    return maintenance.prune()


@job
def check_servers() -> list[dict]:
    """Health, version and start time of every WAHA server (services.fleet), with the job's session cleanup."""
    from portal.services import fleet

    return fleet.check_servers()


@job
def ensure_partitions() -> list[str]:
    """Create the monthly partitions of messages and webhook_events ahead (PostgreSQL; nothing to do on SQLite)."""
    from portal.services import partitions

    return partitions.ensure()


@job
def check_number_health(session_id: str | None = None) -> dict | int | None:
    """Read WhatsApp's timelock and capping: of one session (after a send was refused with 463/475), or of every
    WORKING session whose last reading is a few minutes old."""
    if session_id is not None:
        return number_health.check_session(session_id)
    return number_health.check_due()
