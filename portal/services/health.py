"""Health of the portal's dependencies: readiness (database, Redis, WAHA) and the per-server WAHA report.

Probes use a short-lived WAHA client with a short timeout and no retries, so a server that black-holes packets
costs a probe a couple of seconds, not the minute a normal call with retries could take, and probes never trip
the breaker that real calls rely on. Servers are probed side by side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import current_app
from sqlalchemy import select, text

from portal.extensions import db, redis_store
from portal.models import WahaServer
from portal.services import servers as servers_service
from portal.telemetry import register_secret
from portal.waha import WahaClient, WahaSettings
from portal.waha import errors as waha_errors

PROBE_TIMEOUT_MS = 3000
_MAX_PARALLEL_PROBES = 8


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _describe(exc: BaseException) -> str:
    # Exception text from drivers can carry connection strings; the class and first line are enough here.
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text_ = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text_[:300]


def _check(func: Callable[[], Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        func()
    except Exception as exc:
        return {"ok": False, "latency_ms": _elapsed_ms(started), "error": _describe(exc)}
    return {"ok": True, "latency_ms": _elapsed_ms(started), "error": None}


def probe_settings(server: WahaServer) -> WahaSettings:
    """Client settings for a health probe of `server`: short timeout, no retries, a tiny pool."""
    cfg = current_app.config
    register_secret(server.api_key)
    timeout = min(int(cfg["WAHA_TIMEOUT"]), PROBE_TIMEOUT_MS)
    return WahaSettings(
        base_url=server.base_url,
        api_key=server.api_key,
        timeout_ms=timeout,
        retry_attempts=0,
        pool_max=2,
        pool_min=0,
        pool_acquire_timeout_ms=timeout,
    )


def probe_client(server: WahaServer) -> WahaClient:
    """A throw-away client for one probe of `server` (close it after use; it may be used from another thread)."""
    return WahaClient(probe_settings(server), observer=current_app.extensions.get("portal_waha_observer"))


def _ping(client: WahaClient) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        ok = client.ping()
    finally:
        client.close()
    return {
        "ok": ok,
        "latency_ms": _elapsed_ms(started),
        "error": None if ok else f"no answer from {client.settings.base_url}/ping",
    }


def _in_parallel(func: Callable[[Any], dict[str, Any]], items: list[Any]) -> list[dict[str, Any]]:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(len(items), _MAX_PARALLEL_PROBES), thread_name_prefix="probe") as pool:
        return list(pool.map(func, items))


def _check_database() -> None:
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_redis() -> None:
    redis_store.client.ping()


def _check_waha() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        servers = list(
            db.session.scalars(select(WahaServer).where(WahaServer.is_enabled.is_(True)).order_by(WahaServer.name))
        )
        targets = [(s.name, probe_client(s)) for s in servers]
        db.session.rollback()
    except Exception as exc:
        db.session.rollback()
        return {
            "ok": False,
            "latency_ms": _elapsed_ms(started),
            "error": f"cannot list WAHA servers: {_describe(exc)}",
            "servers": {},
        }
    if not targets:
        return {
            "ok": False,
            "latency_ms": _elapsed_ms(started),
            "error": "no enabled WAHA server is registered",
            "servers": {},
        }
    results = _in_parallel(lambda target: _ping(target[1]), targets)
    per_server = {name: result for (name, _), result in zip(targets, results, strict=True)}
    ok = any(result["ok"] for result in results)
    return {
        "ok": ok,
        "latency_ms": _elapsed_ms(started),
        "error": None if ok else "no enabled WAHA server answers",
        "servers": per_server,
    }


def readiness() -> dict[str, Any]:
    """Database, Redis and WAHA (at least one enabled server answering /ping), each {"ok", "latency_ms", "error"}.

    The WAHA entry also lists each enabled server's probe under "servers".
    """
    return {"database": _check(_check_database), "redis": _check(_check_redis), "waha": _check_waha()}


def _probe_server(target: dict[str, Any]) -> dict[str, Any]:
    """Version (proves the API key too) and WAHA's own /health where the image has it."""
    client: WahaClient = target.pop("client")
    result = dict(target, ok=False, version=None, engine=None, tier=None, latency_ms=None, error=None, status=None)
    started = time.perf_counter()
    try:
        info = client.version()
        result.update(version=info.get("version"), engine=info.get("engine"), tier=info.get("tier"))
        try:
            report = client.health()
            result["status"] = report.get("status")
        except waha_errors.WahaError as exc:
            if exc.status not in (404, 422, 501):  # images before 2026.6.1 have no /health in Core
                raise
            result["status"] = "unsupported"
        result["ok"] = result["status"] != "error"
        if not result["ok"]:
            result["error"] = "WAHA reports itself unhealthy (GET /health)"
    except waha_errors.WahaUnauthorized:
        result["error"] = "WAHA refused the API key"
    except waha_errors.WahaError as exc:
        result["error"] = _describe(exc)
    finally:
        client.close()
        result["latency_ms"] = _elapsed_ms(started)
    result["health"] = "ok" if result["ok"] else "down"
    return result


def _stored(server: WahaServer, sessions: int) -> dict[str, Any]:
    return {
        "id": server.id,
        "name": server.name,
        "base_url": server.base_url,
        "ok": server.health == "ok",
        "health": server.health,
        "version": server.version,
        "engine": server.engine,
        "tier": server.tier,
        "latency_ms": None,
        "error": server.health_error,
        "sessions": sessions,
        "capacity": server.capacity,
        "is_enabled": server.is_enabled,
        "is_draining": server.is_draining,
        "checked_at": server.last_checked_at.isoformat() if server.last_checked_at else None,
    }


def waha_health(live: bool = True) -> list[dict[str, Any]]:
    """Per registered server: name, base_url, ok, version, engine, tier, latency_ms, error, sessions (+ capacity,
    is_enabled, is_draining, checked_at).

    live=True asks every server now (in parallel, a few seconds at worst); live=False returns what the last
    fleet health check stored, with no call to WAHA (for pages that render often).
    """
    counts = servers_service.session_counts()
    servers = servers_service.list_servers()
    stored = [_stored(s, counts.get(s.id, 0)) for s in servers]
    if not live:
        return stored
    targets = [
        {
            "id": row["id"],
            "name": row["name"],
            "base_url": row["base_url"],
            "sessions": row["sessions"],
            "capacity": row["capacity"],
            "is_enabled": row["is_enabled"],
            "is_draining": row["is_draining"],
            "client": probe_client(server),
        }
        for row, server in zip(stored, servers, strict=True)
    ]
    db.session.rollback()
    return _in_parallel(_probe_server, targets)
