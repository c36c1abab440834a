"""What a scrape reads at the time it runs, and the /metrics answer that puts every kind of number together.

Queue depths and RQ workers come from Redis; sessions by status, messages by direction and status, the webhook
backlog and the fleet are gauges read from the database with a few GROUP BY queries (cached in Redis for
``METRICS_DB_CACHE_SECONDS``, so several scrapers and web processes run them once per interval). A source that
cannot be read shows as ``portal_metrics_source_up{source=...} 0`` instead of failing the scrape.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from typing import Any

from flask import Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

from portal.metrics.shared import shared_families
from portal.queue import QUEUES

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SNAPSHOT_KEY = "portal:metrics:db-snapshot"
MESSAGE_STATUSES = ("PENDING", "SERVER", "DEVICE", "READ", "PLAYED", "ERROR")
RQ_STATES = ("queued", "started", "scheduled", "deferred", "failed", "finished")


def _redis_families(connection: Any) -> list[Metric]:
    from rq import Queue, Worker

    families = shared_families(connection)
    depth = GaugeMetricFamily(
        "portal_rq_jobs", "Jobs in each RQ queue and registry, by queue and state.", labels=["queue", "state"]
    )
    for name in QUEUES:
        queue = Queue(name, connection=connection)
        counts = {
            "queued": queue.count,
            "started": queue.started_job_registry.count,
            "scheduled": queue.scheduled_job_registry.count,
            "deferred": queue.deferred_job_registry.count,
            "failed": queue.failed_job_registry.count,
            "finished": queue.finished_job_registry.count,
        }
        for state in RQ_STATES:
            depth.add_metric([name, state], counts[state])
    families.append(depth)
    families.append(
        GaugeMetricFamily("portal_rq_workers", "RQ workers alive.", value=len(Worker.all(connection=connection)))
    )
    return families


def database_snapshot() -> dict[str, Any]:
    """Counts for the scrape-time gauges, from a handful of GROUP BY queries."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Message, WahaServer, WahaSession, WebhookEvent

    sessions = db.session.execute(select(WahaSession.status, func.count()).group_by(WahaSession.status)).all()
    messages = db.session.execute(
        select(Message.direction, Message.status, func.count()).group_by(Message.direction, Message.status)
    ).all()
    backlog = db.session.execute(
        select(WebhookEvent.status, func.count())
        .where(WebhookEvent.status.in_(("pending", "failed")))
        .group_by(WebhookEvent.status)
    ).all()
    counted = db.session.execute(select(WahaSession.server_id, func.count()).group_by(WahaSession.server_id))
    per_server: dict[int, int] = dict(counted.tuples().all())
    servers = [
        {
            "name": s.name,
            "up": 1 if s.health == "ok" else 0,
            "capacity": s.capacity,
            "sessions": per_server.get(s.id, 0),
            "draining": 1 if s.is_draining else 0,
            "enabled": 1 if s.is_enabled else 0,
        }
        for s in db.session.scalars(select(WahaServer).order_by(WahaServer.name))
    ]
    db.session.rollback()  # read-only; end the transaction so the connection goes back to the pool idle
    return {
        "sessions": [[status, n] for status, n in sessions],
        "messages": [[direction, status, n] for direction, status, n in messages],
        "webhook_backlog": [[status, n] for status, n in backlog],
        "servers": servers,
    }


def _bounded(value: str | None, allowed: Iterable[str]) -> str:
    return value if value in set(allowed) else "other"


def _database_families(snapshot: dict[str, Any]) -> list[Metric]:
    from portal.models import SESSION_STATUSES

    sessions = GaugeMetricFamily("portal_sessions", "WhatsApp sessions by status.", labels=["status"])
    totals: dict[str, float] = dict.fromkeys(SESSION_STATUSES, 0)
    for status, n in snapshot["sessions"]:
        key = _bounded(status, SESSION_STATUSES)
        totals[key] = totals.get(key, 0) + n
    for status, n in sorted(totals.items()):
        sessions.add_metric([status], n)

    messages = GaugeMetricFamily(
        "portal_messages", "Stored messages by direction and status.", labels=["direction", "status"]
    )
    grouped: dict[tuple[str, str], float] = {}
    for direction, status, n in snapshot["messages"]:
        pair = (_bounded(direction, ("in", "out")), _bounded(status, MESSAGE_STATUSES))
        grouped[pair] = grouped.get(pair, 0) + n
    for (direction, status), n in sorted(grouped.items()):
        messages.add_metric([direction, status], n)

    backlog = GaugeMetricFamily(
        "portal_webhook_events_backlog", "Stored WAHA events not done yet, by status.", labels=["status"]
    )
    pending = {"pending": 0, "failed": 0}
    pending.update(dict(snapshot["webhook_backlog"]))
    for status, n in sorted(pending.items()):
        backlog.add_metric([status], n)

    families: list[Metric] = [sessions, messages, backlog]
    for key, help_text in (
        ("up", "1 when the last health check of the WAHA server passed."),
        ("sessions", "Sessions placed on the WAHA server."),
        ("capacity", "Sessions the WAHA server may hold."),
        ("draining", "1 when the WAHA server takes no new sessions."),
        ("enabled", "1 when the WAHA server is enabled."),
    ):
        family = GaugeMetricFamily(f"portal_waha_server_{key}", help_text, labels=["server"])
        for server in snapshot["servers"]:
            family.add_metric([server["name"]], server[key])
        families.append(family)
    return families


def _cached_snapshot(connection: Any | None) -> dict[str, Any]:
    ttl = int(current_app.config.get("METRICS_DB_CACHE_SECONDS", 10))
    if connection is not None and ttl > 0:
        try:
            cached = connection.get(SNAPSHOT_KEY)
            if cached:
                return json.loads(cached)
        except Exception:
            connection = None
    snapshot = database_snapshot()
    if connection is not None and ttl > 0:
        try:
            # Several web processes and Prometheus replicas scrape; one set of queries per interval is enough.
            connection.set(SNAPSHOT_KEY, json.dumps(snapshot), ex=ttl)
        except Exception:
            pass
    return snapshot


class _Families:
    """A collector that hands out families read once for this scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


class _Forward:
    """Forwards the process registry (single-process mode: development, tests, one gunicorn worker)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def render() -> bytes:
    """The Prometheus text exposition for this scrape (needs an app context)."""
    from portal.extensions import redis_store

    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_Forward())

    families: list[Metric] = []
    up = GaugeMetricFamily("portal_metrics_source_up", "1 when this scrape could read the source.", labels=["source"])
    connection = None
    try:
        connection = redis_store.client
        families.extend(_redis_families(connection))
        up.add_metric(["redis"], 1)
    except Exception as exc:
        log.warning("metrics: cannot read Redis: %s", type(exc).__name__)
        connection = None
        up.add_metric(["redis"], 0)
    try:
        families.extend(_database_families(_cached_snapshot(connection)))
        up.add_metric(["database"], 1)
    except Exception as exc:
        log.warning("metrics: cannot read the database: %s", type(exc).__name__)
        from portal.extensions import db

        db.session.rollback()
        up.add_metric(["database"], 0)
    families.append(up)
    registry.register(_Families(families))
    return generate_latest(registry)


def metrics_response() -> Response:
    """The /metrics answer."""
    return Response(
        render(),
        mimetype=CONTENT_TYPE_LATEST.split(";")[0],
        headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
    )
