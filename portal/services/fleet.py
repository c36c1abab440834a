"""The fleet of WAHA servers: periodic health checks, version checks, draining.

`check_servers()` runs every minute as the job ``portal.queue.JOB_CHECK_SERVERS`` (schedule id `fleet-check`).
It probes every registered server in parallel with a short timeout (``/ping``, ``/api/server/version``,
``/api/server/status`` and, where the image has it, ``/health``) and stores health, version, engine, tier and
its start timestamp. A changed start timestamp means WAHA restarted: it is logged and audited once
(`server.restarted`) and the new one stored. The sync job needs none of it (its one WAHA call is the session
list): recovery follows each session's state, so a restart is repaired whichever job sees it first.

A server whose version predates 2026.6.1 is logged as a warning: the free Core image of that age runs a single
session named "default", so a multi-tenant portal cannot place sessions on it (placement skips such a server
when it reports tier CORE).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.i18n import N_
from portal.models import WahaServer, WahaSession, utcnow
from portal.services import audit
from portal.services import servers as servers_service
from portal.services.audit import SYSTEM, Actor
from portal.services.errors import Invalid, NotFound
from portal.services.health import probe_client
from portal.services.servers import MULTI_SESSION_SINCE, predates_multi_session
from portal.waha import WahaClient
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

_MAX_PARALLEL = 8

__all__ = [
    "MULTI_SESSION_SINCE",
    "check_server",
    "check_servers",
    "drain_server",
    "find_server",
    "predates_multi_session",
    "sessions_on",
    "undrain_server",
    "update_server",
]


def _probe(client: WahaClient) -> dict[str, Any]:
    """Ask one server how it is, then close the client; no database or app access here (runs in a thread)."""
    result: dict[str, Any] = {
        "ok": False,
        "error": None,
        "version": None,
        "engine": None,
        "tier": None,
        "start_timestamp": None,
        "status": None,
    }
    started = time.perf_counter()
    try:
        if not client.ping():
            result["error"] = f"no answer from {client.settings.base_url}/ping"
            return result
        info = client.version()
        result.update(version=info.get("version"), engine=info.get("engine"), tier=info.get("tier"))
        try:
            status = client.server_status()
            if isinstance(status.get("startTimestamp"), (int, float)):
                result["start_timestamp"] = int(status["startTimestamp"])
        except waha_errors.WahaNotFound:
            pass  # very old images have no /api/server/status
        try:
            result["status"] = client.health().get("status")
        except waha_errors.WahaError as exc:
            if exc.status not in (404, 422, 501):  # Core before 2026.6.1 answers 422 "Plus only"
                raise
            result["status"] = "unsupported"
        if result["status"] == "error":
            result["error"] = "WAHA reports itself unhealthy (GET /health)"
        else:
            result["ok"] = True
    except waha_errors.WahaUnauthorized:
        result["error"] = "WAHA refused the API key"
    except waha_errors.WahaError as exc:
        result["error"] = str(exc)[:300]
    finally:
        client.close()
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _warn_outdated(server: WahaServer) -> None:
    log.warning(
        "WAHA server %s at %s runs version %s (tier %s), which predates %s: the free Core image of that age "
        "runs one session named 'default' only. Upgrade it to devlikeapro/waha:%s or later.",
        server.name,
        server.base_url,
        server.version,
        server.tier or "unknown",
        ".".join(map(str, MULTI_SESSION_SINCE)),
        ".".join(map(str, MULTI_SESSION_SINCE)),
    )


def _apply(server: WahaServer, result: dict[str, Any], *, warn_always: bool) -> dict[str, Any]:
    previous_health, previous_version = server.health, server.version
    server.last_checked_at = utcnow()
    server.health = "ok" if result["ok"] else "down"
    server.health_error = result["error"][:300] if result["error"] else None
    if result["version"]:
        server.version = str(result["version"])[:32]
        server.engine = str(result["engine"])[:16] if result["engine"] else None
        server.tier = str(result["tier"])[:16] if result["tier"] else None
    restarted = False
    if result["start_timestamp"] is not None:
        if server.start_timestamp is None:
            server.start_timestamp = result["start_timestamp"]
        elif server.start_timestamp != result["start_timestamp"]:
            restarted = True
            log.warning(
                "WAHA server %s restarted (start timestamp %s, was %s); session recovery follows with the next sync",
                server.name,
                result["start_timestamp"],
                server.start_timestamp,
            )
            audit.record(
                None,
                "server.restarted",
                SYSTEM,
                target_type="waha_server",
                target_id=server.id,
                details={"start_timestamp": result["start_timestamp"], "previous": server.start_timestamp},
            )
            server.start_timestamp = result["start_timestamp"]
    outdated = bool(server.version) and predates_multi_session(server.version)
    if outdated and (warn_always or server.version != previous_version):
        _warn_outdated(server)
    if previous_health != server.health:
        level = logging.WARNING if server.health == "down" else logging.INFO
        log.log(
            level,
            "WAHA server %s is %s (was %s)%s",
            server.name,
            server.health,
            previous_health,
            f": {server.health_error}" if server.health_error else "",
        )
        audit.record(
            None,
            "server.health_changed",
            SYSTEM,
            target_type="waha_server",
            target_id=server.id,
            details={"name": server.name, "from": previous_health, "to": server.health, "error": server.health_error},
        )
    return {
        "id": server.id,
        "name": server.name,
        "base_url": server.base_url,
        "health": server.health,
        "error": server.health_error,
        "version": server.version,
        "engine": server.engine,
        "tier": server.tier,
        "start_timestamp": result["start_timestamp"],
        "restarted": restarted,
        "outdated": outdated,
        "latency_ms": result.get("latency_ms"),
    }


def check_servers(warn_always: bool = False) -> list[dict[str, Any]]:
    """Probe every registered server and store what it reports; returns one summary dict per server.

    Seeds the first server from WAHA_BASE_URL when none is registered. Logs a warning for each server whose
    version predates 2026.6.1 the first time that version is seen (always with `warn_always`, as the CLI does).
    """
    servers_service.ensure_default_server()
    servers = servers_service.list_servers()
    if not servers:
        return []
    clients = [probe_client(s) for s in servers]
    with ThreadPoolExecutor(max_workers=min(len(servers), _MAX_PARALLEL), thread_name_prefix="fleet") as pool:
        results = list(pool.map(_probe, clients))
    summaries = [
        _apply(server, result, warn_always=warn_always) for server, result in zip(servers, results, strict=True)
    ]
    db.session.commit()
    return summaries


def check_server(server_id: int, warn_always: bool = True) -> dict[str, Any]:
    """Probe one server now and store the result (the admin page's "check now")."""
    server = servers_service.get_server(server_id)
    summary = _apply(server, _probe(probe_client(server)), warn_always=warn_always)
    db.session.commit()
    return summary


def _set_draining(server_id: int, actor: Actor, draining: bool) -> WahaServer:
    server = servers_service.get_server(server_id)
    if server.is_draining == draining:
        return server
    server.is_draining = draining
    sessions = servers_service.session_counts().get(server.id, 0)
    audit.record(
        None,
        "server.drain" if draining else "server.undrain",
        actor,
        target_type="waha_server",
        target_id=server.id,
        details={"name": server.name, "sessions": sessions},
    )
    db.session.commit()
    log.info(
        "WAHA server %s %s (%d sessions stay where they are)",
        server.name,
        "is draining" if draining else "takes new sessions again",
        sessions,
    )
    return server


def drain_server(server_id: int, actor: Actor) -> WahaServer:
    """Stop placing new sessions on a server; its sessions keep running there. Audited."""
    return _set_draining(server_id, actor, True)


def undrain_server(server_id: int, actor: Actor) -> WahaServer:
    """Let a drained server take new sessions again. Audited."""
    return _set_draining(server_id, actor, False)


def update_server(
    server_id: int, actor: Actor, *, capacity: int | None = None, is_enabled: bool | None = None
) -> WahaServer:
    """Change a server's capacity or enable/disable it (a disabled server takes no new sessions and is left out
    of readiness). Audited."""
    server = servers_service.get_server(server_id)
    changes: dict[str, Any] = {}
    if capacity is not None and capacity != server.capacity:
        if capacity < 1:
            raise Invalid.field("capacity", N_("Capacity must be at least 1."))
        changes["capacity"] = {"from": server.capacity, "to": capacity}
        server.capacity = capacity
    if is_enabled is not None and is_enabled != server.is_enabled:
        changes["is_enabled"] = {"from": server.is_enabled, "to": is_enabled}
        server.is_enabled = is_enabled
    if changes:
        audit.record(
            None,
            "server.update",
            actor,
            target_type="waha_server",
            target_id=server.id,
            details={"name": server.name, **changes},
        )
    db.session.commit()
    return server


def find_server(name_or_id: str) -> WahaServer:
    """A server by name, or by id when given digits (for the CLI)."""
    if name_or_id.isascii() and name_or_id.isdecimal():
        return servers_service.get_server(int(name_or_id))
    server = db.session.scalar(select(WahaServer).where(WahaServer.name == name_or_id))
    if server is None:
        raise NotFound(f"No WAHA server named {name_or_id!r}.", code="server_not_found")
    return server


def sessions_on(server_id: int, limit: int = 200) -> list[WahaSession]:
    """Sessions placed on one server (with their tenant loaded), newest first, at most `limit`."""
    from sqlalchemy.orm import selectinload

    return list(
        db.session.scalars(
            select(WahaSession)
            .where(WahaSession.server_id == server_id)
            .options(selectinload(WahaSession.tenant))
            .order_by(WahaSession.created_at.desc())
            .limit(limit)
        )
    )
