"""Periodic jobs as data: a stable id, the job function, how often, and the queue.

`flask scheduler` registers these with RQ's CronScheduler; the embedded default runs them on a thread.
`interval` is seconds, or the name of a setting holding seconds (so SYNC_INTERVAL drives the sync).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portal.queue import (
    JOB_ADVANCE_CAMPAIGNS,
    JOB_CHECK_NUMBER_HEALTH,
    JOB_CHECK_SERVERS,
    JOB_DISPATCH_DUE,
    JOB_ENSURE_PARTITIONS,
    JOB_FETCH_AVATARS,
    JOB_PRIVACY_UPKEEP,
    JOB_PRUNE,
    JOB_PRUNE_BROWSER_SESSIONS,
    JOB_RECONCILE,
    JOB_RECONCILE_QUOTAS,
    JOB_RECONCILE_SENDS,
    JOB_RECOUNT_MEDIA,
    JOB_SWEEP_EVENTS,
    JOB_SWEEP_SENDS,
    JOB_SYNC_SESSIONS,
    JOB_WATCHDOG,
    QUEUE_EVENTS,
    QUEUE_FORWARDING,
    QUEUE_MAINTENANCE,
    QUEUE_OUTREACH,
)

SCHEDULE: list[dict[str, Any]] = [
    # status of every session, one list call per WAHA server; restarts what should run (WAHA restarts)
    {"id": "sessions-sync", "func": JOB_SYNC_SESSIONS, "interval": "SYNC_INTERVAL", "queue": QUEUE_MAINTENANCE},
    # events left pending (Redis was down at ingest, a worker died mid-batch) are queued again
    {"id": "events-sweep", "func": JOB_SWEEP_EVENTS, "interval": "EVENTS_SWEEP_INTERVAL", "queue": QUEUE_EVENTS},
    # delivery retries that are due, and first attempts whose job was lost
    {"id": "deliveries-dispatch", "func": JOB_DISPATCH_DUE, "interval": 5, "queue": QUEUE_FORWARDING},
    # the send queue: items a dead dispatcher left "sending", and sessions with due items whose job was lost
    {"id": "sends-sweep", "func": JOB_SWEEP_SENDS, "interval": 5, "queue": QUEUE_OUTREACH},
    # WAHA sessions nobody owns, and rows whose WAHA session vanished
    {"id": "sessions-reconcile", "func": JOB_RECONCILE, "interval": 300, "queue": QUEUE_MAINTENANCE},
    # sends whose outcome is unknown (WAHA did not answer): looked up in WAHA by their WhatsApp id
    {"id": "sends-reconcile", "func": JOB_RECONCILE_SENDS, "interval": 60, "queue": QUEUE_MAINTENANCE},
    # WORKING sessions that went quiet: WAHA may report WORKING for a session logged out on the phone
    {"id": "sessions-watchdog", "func": JOB_WATCHDOG, "interval": 60, "queue": QUEUE_MAINTENANCE},
    # WhatsApp's timelock and capping of WORKING sessions, each read again after services.number_health.CHECK_EVERY
    {"id": "number-health", "func": JOB_CHECK_NUMBER_HEALTH, "interval": 60, "queue": QUEUE_MAINTENANCE},
    # health, version and start time of every WAHA server; warns about versions before 2026.6.1
    {"id": "fleet-check", "func": JOB_CHECK_SERVERS, "interval": 60, "queue": QUEUE_MAINTENANCE},
    # signed-in browsers that ended (expired or signed out) more than 30 days ago
    {"id": "browser-sessions-prune", "func": JOB_PRUNE_BROWSER_SESSIONS, "interval": 86400, "queue": QUEUE_MAINTENANCE},
    # contacts' profile pictures: new contacts first, then a weekly refresh (a few per run, paced by the interval)
    {"id": "avatars-fetch", "func": JOB_FETCH_AVATARS, "interval": 60, "queue": QUEUE_MAINTENANCE},
    # PostgreSQL: monthly partitions of messages and webhook_events, this month and the next two (idempotent)
    {"id": "partitions-ensure", "func": JOB_ENSURE_PARTITIONS, "interval": 3600, "queue": QUEUE_MAINTENANCE},
    # campaigns: start at their time, check numbers at a paced rate, queue them, finish when all settled
    {"id": "campaigns-advance", "func": JOB_ADVANCE_CAMPAIGNS, "interval": 15, "queue": QUEUE_MAINTENANCE},
    # plans: Redis's usage counts into quota_usage (seed of Redis after a loss), then the 80 % / 100 % warnings
    {"id": "quotas-reconcile", "func": JOB_RECONCILE_QUOTAS, "interval": 60, "queue": QUEUE_MAINTENANCE},
    # plans: media storage counted again from the stored files (retention removes files)
    {"id": "quotas-media-recount", "func": JOB_RECOUNT_MEDIA, "interval": 3600, "queue": QUEUE_MAINTENANCE},
    # retention of messages, media files, events and deliveries (PostgreSQL: whole monthly partitions)
    {"id": "retention-prune", "func": JOB_PRUNE, "interval": 3600, "queue": QUEUE_MAINTENANCE},
    # expired whole-tenant exports, and tenants whose deletion's grace period is over
    {"id": "privacy-upkeep", "func": JOB_PRIVACY_UPKEEP, "interval": 3600, "queue": QUEUE_MAINTENANCE},
]

# Defaults of the interval settings that are not in portal.config.
DEFAULT_SETTINGS = {"EVENTS_SWEEP_INTERVAL": 15}


@dataclass(frozen=True)
class Entry:
    id: str
    func: str
    interval: int
    queue: str


def entries(config: Mapping[str, Any]) -> list[Entry]:
    """The schedule with intervals resolved against the app configuration."""
    result = []
    for item in SCHEDULE:
        interval = item["interval"]
        if isinstance(interval, str):
            interval = config.get(interval, DEFAULT_SETTINGS.get(interval))
        result.append(Entry(id=item["id"], func=item["func"], interval=max(1, int(interval)), queue=item["queue"]))
    return result
