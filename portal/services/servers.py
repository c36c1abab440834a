"""WAHA servers: registration, placement of new sessions, and the client for each server."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select

from portal.extensions import db, redis_store
from portal.i18n import N_
from portal.models import WahaServer, WahaSession
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid, NotFound, Upstream
from portal.telemetry import register_secret
from portal.waha import WahaClient, WahaSettings, get_client
from portal.waha.breaker import RedisBreakerStore


def waha_settings(server: WahaServer) -> WahaSettings:
    """Client settings for one server, from the row and the app's WAHA_* configuration."""
    cfg = current_app.config
    register_secret(server.api_key)
    return WahaSettings(
        base_url=server.base_url,
        api_key=server.api_key,
        timeout_ms=cfg["WAHA_TIMEOUT"],
        retry_attempts=cfg["WAHA_RETRY_ATTEMPTS"],
        pool_max=cfg["WAHA_POOL_MAX"],
        pool_min=cfg["WAHA_POOL_MIN"],
        pool_acquire_timeout_ms=cfg["WAHA_POOL_ACQUIRE_TIMEOUT"],
        pool_idle_timeout_ms=cfg["WAHA_POOL_IDLE_TIMEOUT"],
    )


def breaker_store() -> RedisBreakerStore:
    """Where the WAHA servers' circuit breakers keep their state: the app's Redis, shared by every process."""
    store = current_app.extensions.get("portal_waha_breakers")
    if store is None:
        store = current_app.extensions["portal_waha_breakers"] = RedisBreakerStore(redis_store.client)
    return store


def client_for(server: WahaServer) -> WahaClient:
    """The process-wide client (one connection pool) of this server; its breaker state lives in Redis."""
    observer = current_app.extensions.get("portal_waha_observer")
    return get_client(waha_settings(server), observer=observer, breaker_store=breaker_store())


def add_server(name: str, base_url: str, api_key: str, actor: Actor, *, capacity: int = 50) -> WahaServer:
    """Register a WAHA server; name and URL must be new."""
    name, base_url = name.strip(), base_url.strip().rstrip("/")
    if not name:
        raise Invalid.field("name", N_("Name must not be empty."))
    if not base_url.startswith(("http://", "https://")):
        raise Invalid.field("base_url", N_("Base URL must start with http:// or https://."))
    if capacity < 1:
        raise Invalid.field("capacity", N_("Capacity must be at least 1."))
    if db.session.scalar(select(WahaServer.id).where((WahaServer.name == name) | (WahaServer.base_url == base_url))):
        raise Conflict(N_("A WAHA server with that name or URL is already registered."), code="server_exists")
    server = WahaServer(name=name, base_url=base_url, api_key=api_key, capacity=capacity)
    db.session.add(server)
    db.session.flush()
    audit.record(
        None,
        "server.add",
        actor,
        target_type="waha_server",
        target_id=server.id,
        details={"name": name, "base_url": base_url, "capacity": capacity},
    )
    db.session.commit()
    return server


def ensure_default_server() -> WahaServer | None:
    """Seed the first server from WAHA_BASE_URL / WAHA_API_KEY when none is registered."""
    if db.session.scalar(select(func.count(WahaServer.id))):
        return None
    cfg = current_app.config
    return add_server("default", cfg["WAHA_BASE_URL"], cfg["WAHA_API_KEY"], audit.SYSTEM)


def list_servers() -> list[WahaServer]:
    """Every registered server, by name."""
    return list(db.session.scalars(select(WahaServer).order_by(WahaServer.name)))


def get_server(server_id: int) -> WahaServer:
    """One server, or NotFound."""
    server = db.session.get(WahaServer, server_id)
    if server is None:
        raise NotFound(N_("No such WAHA server."), code="server_not_found")
    return server


def session_counts() -> dict[int, int]:
    """Number of sessions placed on each server."""
    rows = db.session.execute(select(WahaSession.server_id, func.count(WahaSession.id)).group_by(WahaSession.server_id))
    return dict(rows.tuples().all())


# The free Core image before this version runs one session named "default" (CONTRACT section 1).
MULTI_SESSION_SINCE = (2026, 6, 1)


def parse_version(version: str | None) -> tuple[int, ...] | None:
    """WAHA's "2026.7.1" (or "2024.10.8-plus") as a tuple of numbers; None when it does not look like one."""
    if not version:
        return None
    numbers = []
    for part in version.strip().lstrip("vV").split("."):
        digits = ""
        for char in part:
            if not (char.isascii() and char.isdecimal()):
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers) or None


def predates_multi_session(version: str | None) -> bool:
    """True when `version` is older than 2026.6.1, the first free image that runs several sessions."""
    parsed = parse_version(version)
    return parsed is not None and parsed < MULTI_SESSION_SINCE


def accepts_new_sessions(server: WahaServer) -> bool:
    """Enabled, not draining, not failing its health check, and not a single-session Core image."""
    if not server.is_enabled or server.is_draining or server.health == "down":
        return False
    return not (server.tier == "CORE" and predates_multi_session(server.version))


def pick_server() -> WahaServer:
    """Where a new session goes: among servers that accept new sessions and have room, a healthy one ("ok")
    before one not checked yet, then the most free slots. Upstream when none has room.

    Two sessions created at the same instant may both land on a server's last slot; capacity is a placement
    guide, not a hard limit of WAHA.
    """
    counts = session_counts()
    servers = list_servers()
    candidates = [s for s in servers if accepts_new_sessions(s) and counts.get(s.id, 0) < s.capacity]
    if not candidates:
        if any(s.health == "down" and s.is_enabled and not s.is_draining for s in servers):
            # the servers that would take it failed their health check: say so, not that they are full
            raise Upstream(
                N_("The WhatsApp server cannot be reached right now, so the session was not created. Try again soon."),
                code="waha_unavailable",
                details={"reason": "unreachable"},
            )
        raise Upstream(N_("No WAHA server has room for a new session right now."), code="waha_unavailable")
    return max(candidates, key=lambda s: (s.health == "ok", s.capacity - counts.get(s.id, 0)))
