"""WhatsApp sessions of a tenant: create, control, sync, QR and pairing, each call checked against the tenant.

Every function takes the tenant and only ever touches that tenant's rows; another tenant's session is simply
not found. WAHA is reached through `portal.services.servers.client_for`; its typed errors become ServiceErrors
in one place (`map_waha_error`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import phonenumbers
import redis
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import joinedload

from portal.extensions import db, redis_store
from portal.models import ENGINES, Tenant, WahaSession, utcnow
from portal.services import audit, destinations, idempotency, pacing, servers, session_secrets, upstream
from portal.services.audit import SYSTEM, Actor
from portal.permissions import LINK_PHONE
from portal.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError, Upstream
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

NAME_MAX = 100
EXTERNAL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,54}$")

# WAHA's event names (CONTRACT 8.4); "*" means all of them except state.change and engine.event.
WAHA_EVENTS = frozenset({
    "session.status", "message", "message.any", "message.reaction", "message.ack", "message.ack.group",
    "message.waiting", "message.revoked", "message.edited", "chat.archive", "group.v2.join", "group.v2.leave",
    "group.v2.update", "group.v2.participants", "presence.update", "poll.vote", "poll.vote.failed",
    "call.received", "call.accepted", "call.rejected", "label.upsert", "label.deleted", "label.chat.added",
    "label.chat.deleted", "event.response", "event.response.failed", "engine.event", "state.change", "group.join",
    "group.leave",
})
DEFAULT_WEBHOOK_EVENTS = ["message", "session.status"]
# Session config keys a tenant may set; webhooks are the portal's own (the tenant's URL is served by forwarding).
TENANT_CONFIG_KEYS = frozenset({"metadata", "proxy", "debug", "ignore", "client", "noweb", "webjs", "gows"})
METADATA_MAX_ENTRIES = 20
METADATA_PREFIX = "portal."
# WAHA retries a failed delivery to the portal 2^n * 2 s apart: about 17 minutes in all, enough to ride out a
# deploy; anything lost after that is picked up by the status sync.
PORTAL_WEBHOOK_RETRIES = {"policy": "exponential", "delaySeconds": 2, "attempts": 8}

# QR codes rotate every ~20 s (the first lives ~60 s); a few seconds of cache turns many viewers into one call.
QR_CACHE_SECONDS = 4.0
QR_LOCK_SECONDS = 5.0
QR_WAIT_SECONDS = 1.0
QR_FIRST_LIFETIME = 60
QR_NEXT_LIFETIME = 20


@dataclass(frozen=True)
class QrCode:
    """A QR image to scan: base64 `data` of `mimetype`, and the estimated seconds until WhatsApp rotates it."""

    mimetype: str
    data: str
    expires_in: int | None


# ---------------------------------------------------------------------------------------------- WAHA errors

def map_waha_error(exc: waha_errors.WahaError, session: WahaSession | None = None) -> ServiceError:
    """The ServiceError a WAHA failure means to the portal's caller (one table for every service)."""
    if isinstance(exc, waha_errors.WahaUnavailable):
        # The client's text names WAHA's address: operators read it in the log, tenants get the reason code.
        upstream.log_failure("WAHA unavailable", exc)
        # An open circuit knows when it lets calls through again; otherwise a short pause.
        retry_after = exc.retry_after or (1 if isinstance(exc, waha_errors.WahaPoolExhausted) else 5)
        return Upstream(f"{upstream.describe(exc)} Try again in a few seconds.",
                        retry_after=retry_after, details={"reason": upstream.reason(exc)})
    if isinstance(exc, waha_errors.WahaUnauthorized):
        # Our own API key was refused: the portal is misconfigured, nothing the caller can fix.
        log.error("WAHA refused the portal's API key: %s", exc)
        return Upstream("The WAHA server refused the portal's credentials; an operator has to fix its API key.",
                        retry_after=60)
    if isinstance(exc, waha_errors.WahaSessionNotReady):
        status = exc.session_status or (session.status if session is not None else None)
        return Conflict(f"The session is {status or 'not ready'}; it must be {' or '.join(exc.expected) or 'WORKING'}"
                        " for this.", code="session_not_ready",
                        details={"status": status, "expected": exc.expected})
    if isinstance(exc, waha_errors.WahaNotFound):
        if session is not None:
            return Conflict("The session does not exist on its WAHA server; start it to re-create it.",
                            code="session_missing_on_waha", details={"status": session.status})
        return NotFound("WAHA does not know this item.", code="not_found")
    if isinstance(exc, waha_errors.WahaAlreadyExists):
        return Conflict("A session with this name already exists on the WAHA server.", code="session_exists")
    if isinstance(exc, waha_errors.WahaNotImplemented):
        return Invalid(f"The WAHA server does not support this: {exc.message}", code="not_supported")
    if isinstance(exc, waha_errors.WahaValidationError):
        return Invalid("WAHA refused the request: " + "; ".join(exc.messages),
                       details={"fields": [{"field": "waha", "message": m} for m in exc.messages]})
    if isinstance(exc, waha_errors.WahaMediaTooLarge):
        return Invalid(exc.message, code="media_too_large")
    upstream.log_failure("unexpected WAHA error", exc)
    return Upstream(f"{upstream.describe(exc)} Try again in a few seconds.",
                    details={"status": exc.status, "reason": upstream.reason(exc)})


def _client(session: WahaSession):
    return servers.client_for(session.server)


# ---------------------------------------------------------------------------------------------- validation

def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise Invalid.field("name", "Name must not be empty.")
    name = " ".join(name.split())
    if len(name) > NAME_MAX:
        raise Invalid.field("name", f"Name must be at most {NAME_MAX} characters.")
    return name


def _clean_engine(engine: Any) -> str | None:
    if engine is None or engine == "":
        return None
    if not isinstance(engine, str) or engine.upper() not in ENGINES:
        raise Invalid.field("engine", f"Engine must be one of {', '.join(ENGINES)}.")
    return engine.upper()


def _clean_webhook_url(url: Any) -> str | None:
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        raise Invalid.field("webhook_url", "Webhook URL must be an http:// or https:// URL.")
    return destinations.clean_url(url, "webhook_url", "webhook URL")


def _clean_events(events: Any, url: str | None) -> list[str]:
    if events is None:
        return list(DEFAULT_WEBHOOK_EVENTS) if url else []
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise Invalid.field("webhook_events", "Webhook events must be a list of event names.")
    unknown = [e for e in events if e != "*" and e not in WAHA_EVENTS]
    if unknown:
        raise Invalid.field("webhook_events", f"Unknown event names: {', '.join(unknown)}.")
    return list(dict.fromkeys(events))  # de-duplicated, order kept


def _clean_config(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise Invalid.field("config", "Config must be an object.")
    unknown = sorted(set(config) - TENANT_CONFIG_KEYS)
    if unknown:
        hint = " (use webhook_url for webhooks)" if "webhooks" in unknown else ""
        raise Invalid.field("config", f"Unknown config keys: {', '.join(unknown)}{hint}.")
    metadata = config.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise Invalid.field("config.metadata", "Metadata must map strings to strings.")
        if len(metadata) > METADATA_MAX_ENTRIES:
            raise Invalid.field("config.metadata", f"Metadata may have at most {METADATA_MAX_ENTRIES} entries.")
        if any(k.startswith(METADATA_PREFIX) for k in metadata):
            raise Invalid.field("config.metadata", f"Metadata keys starting with '{METADATA_PREFIX}' are reserved.")
    if config.get("proxy") is not None:
        # WAHA connects to WhatsApp through this server: it passes the same destination policy as every URL.
        config = {**config, "proxy": destinations.clean_proxy(config["proxy"])}
    try:
        json.dumps(config)
    except (TypeError, ValueError):
        raise Invalid.field("config", "Config must be plain JSON.") from None
    return config


def phone_digits(phone: Any, field: str = "phone") -> str:
    """International digits of a phone number ("+49 170 1234567" -> "491701234567"); Invalid(field) when bad."""
    if not isinstance(phone, str) or not phone.strip():
        raise Invalid.field(field, "A phone number is required.")
    raw = phone.strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    elif not raw.startswith("+"):
        raw = "+" + raw
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise Invalid.field(field, "Not a valid phone number; write it with the country code, e.g. +49 170 1234567."
                            ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise Invalid.field(field, "Not a valid phone number; write it with the country code, e.g. +49 170 1234567.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def _slug(name: str, length: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:length].strip("-") or "s"


def external_name_for(tenant_id: int, name: str) -> str:
    """A WAHA session name for a new session: tenant id, the name as a slug and a random suffix (<= 54 chars)."""
    prefix = f"t{tenant_id}_"
    suffix = "_" + secrets.token_hex(3)
    external = prefix + _slug(name, 54 - len(prefix) - len(suffix)) + suffix
    assert EXTERNAL_NAME_RE.match(external), external
    return external


# ---------------------------------------------------------------------------------------------- config for WAHA

def webhook_url_for(session: WahaSession) -> str:
    """Where WAHA posts this session's events: the portal's receiver, naming the session."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/webhooks/waha?session={session.id}"


def waha_config_for(session: WahaSession) -> dict[str, Any]:
    """The full WAHA session config: the tenant's own settings, our metadata, and one signed webhook to the portal.

    The portal subscribes to every event ("*"), so tenant endpoints can subscribe to any event later without
    re-configuring WAHA; events nobody wants are stored and dropped by the processing side.
    """
    tenant_config = dict(session.config or {})
    metadata = dict(tenant_config.pop("metadata", None) or {})
    metadata.update({"portal.tenant_id": str(session.tenant_id), "portal.session_id": session.id})
    config: dict[str, Any] = {key: value for key, value in tenant_config.items() if key in TENANT_CONFIG_KEYS}
    config["metadata"] = metadata
    config["webhooks"] = [{
        "url": webhook_url_for(session),
        "events": ["*"],
        "hmac": {"key": session.hmac_key},
        "retries": dict(PORTAL_WEBHOOK_RETRIES),
    }]
    return config


# ---------------------------------------------------------------------------------------------- status

def _qr_key(session_id: str) -> str:
    return f"qr:{session_id}"


def drop_qr_cache(session_id: str) -> None:
    """Forget the cached QR of a session (its status changed or the QR rotated)."""
    try:
        redis_store.client.delete(_qr_key(session_id))
    except redis.RedisError:
        log.warning("could not drop the QR cache of session %s", session_id, exc_info=True)


def apply_status(session: WahaSession, status: str | None, *, me: dict | None = None, actor: Actor = SYSTEM,
                 source: str = "sync") -> bool:
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
    audit.record(session.tenant_id, "session.status", actor, target_type="session", target_id=session.id,
                 details={"from": previous, "to": status, "source": source})
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


# ---------------------------------------------------------------------------------------------- reading

def get_session(tenant: Tenant, session_id: Any) -> WahaSession:
    """One of the tenant's sessions; NotFound("session_not_found") for unknown ids and other tenants' ids."""
    session = None
    if session_id:
        # The server comes along in the same query: almost every caller goes on to talk to WAHA.
        session = db.session.scalar(select(WahaSession).options(joinedload(WahaSession.server)).where(
            WahaSession.id == str(session_id), WahaSession.tenant_id == tenant.id))
    if session is None:
        raise NotFound("No such session.", code="session_not_found")
    return session


def list_sessions(tenant: Tenant, *, status: str | None = None) -> list[WahaSession]:
    """The tenant's sessions, oldest first, optionally only those in one status."""
    stmt = WahaSession.scoped(tenant.id)
    if status:
        stmt = stmt.where(WahaSession.status == status)
    return list(db.session.scalars(stmt.order_by(WahaSession.created_at, WahaSession.id)))


# ---------------------------------------------------------------------------------------------- create

def _discard_on_waha(client: Any, external_name: str) -> bool:
    """Best effort: delete a session WAHA created but the portal could not keep. True when it is gone."""
    try:
        client.delete_session(external_name)
        return True
    except waha_errors.WahaError:
        # The orphan reconciler deletes WAHA sessions that carry our metadata but have no row.
        log.error("could not delete orphan session %s on WAHA at %s", external_name, client.settings.base_url,
                  exc_info=True)
        return False


def _replay(tenant: Tenant, record: Any) -> WahaSession:
    try:
        return get_session(tenant, (record.response or {}).get("session_id"))
    except NotFound:
        # The key's session was deleted since: the key is spent, not the session missing (a 404 would say the
        # create itself had failed to find something).
        raise Conflict("The session created with this Idempotency-Key was deleted since; use a new key to create "
                       "another.", code="idempotency_key_reused") from None


def create_session(tenant: Tenant, actor: Actor, *, name: str, engine: str | None = None,
                   webhook_url: str | None = None, webhook_events: list[str] | None = None,
                   config: dict[str, Any] | None = None, idempotency_key: str | None = None) -> WahaSession:
    """Create a session on a WAHA server with room, started, with our webhook and metadata; audit it.

    The row is inserted and flushed first (unique name per tenant, unique external name per server), then WAHA
    creates the session, then the row is committed. When WAHA fails the row is rolled back; when the commit
    fails after WAHA created the session, the WAHA session is deleted again, so neither side keeps an orphan.
    A repeated Idempotency-Key with the same request returns the first session without calling WAHA again.
    """
    name = _clean_name(name)
    engine = _clean_engine(engine)
    webhook_url = _clean_webhook_url(webhook_url)
    webhook_events = _clean_events(webhook_events, webhook_url)
    config = _clean_config(config)
    key = idempotency.clean_key(idempotency_key)
    fingerprint = idempotency.fingerprint({"name": name, "engine": engine, "webhook_url": webhook_url,
                                           "webhook_events": webhook_events, "config": config})

    # One create at a time per tenant: the limit and the name check stay true until we commit.
    db.session.execute(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update())
    if key:
        record = idempotency.lookup(tenant.id, "session.create", key, fingerprint)
        if record is not None:
            db.session.rollback()
            return _replay(tenant, record)
    if db.session.scalar(select(WahaSession.id).where(WahaSession.tenant_id == tenant.id,
                                                      WahaSession.name == name)):
        db.session.rollback()
        raise Conflict(f"A session named '{name}' already exists.", code="session_exists",
                       details={"fields": [{"field": "name", "message": "This name is taken."}]})
    count = db.session.scalar(select(func.count(WahaSession.id)).where(WahaSession.tenant_id == tenant.id)) or 0
    if count >= tenant.max_sessions:
        db.session.rollback()
        raise Conflict(f"This tenant may have at most {tenant.max_sessions} sessions.", code="session_limit",
                       details={"max_sessions": tenant.max_sessions})

    try:
        server = servers.pick_server()
    except ServiceError:
        db.session.rollback()
        raise
    if engine and server.engine and server.engine.upper() != engine:
        db.session.rollback()
        raise Invalid.field("engine", f"The WAHA servers with room run the {server.engine} engine.")

    session = WahaSession(
        tenant_id=tenant.id, server_id=server.id, server=server, name=name,
        external_name=external_name_for(tenant.id, name), engine=engine or server.engine, status="STARTING",
        desired_state="running", webhook_url=webhook_url, webhook_events=webhook_events, config=config,
        hmac_key=secrets.token_urlsafe(32), webhook_secret=session_secrets.new_secret(), status_changed_at=utcnow(),
    )
    db.session.add(session)
    try:
        db.session.flush()
        if key:
            idempotency.remember(tenant.id, "session.create", key, fingerprint, {"session_id": session.id}, 201)
            db.session.flush()
    except IntegrityError:
        db.session.rollback()
        if key:
            record = idempotency.lookup(tenant.id, "session.create", key, fingerprint)
            if record is not None:
                return _replay(tenant, record)
        raise Conflict(f"A session named '{name}' already exists.", code="session_exists") from None

    # Taken now: after a rollback the rows are expired and the database may be the thing that failed.
    external, server_name, client = session.external_name, server.name, servers.client_for(server)
    try:
        info = client.create_session(external, waha_config_for(session), start=True)
    except waha_errors.WahaError as exc:
        db.session.rollback()
        if isinstance(exc, waha_errors.WahaTimeout):
            # No answer does not mean nothing happened: WAHA may have created it after all.
            _discard_on_waha(client, external)
        log.warning("WAHA refused to create session %s: %s", external, exc)
        raise map_waha_error(exc) from exc

    _apply_info(session, info, actor, "create")
    audit.record(tenant.id, "session.create", actor, target_type="session", target_id=session.id,
                 details={"name": name, "external_name": external, "server": server_name,
                          "engine": session.engine})
    try:
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        _discard_on_waha(client, external)
        raise
    return session


# ---------------------------------------------------------------------------------------------- control

def _control(tenant: Tenant, session_id: Any, actor: Actor, action: str, desired: str) -> WahaSession:
    session = get_session(tenant, session_id)
    client = _client(session)
    try:
        if action == "stop":
            info = client.stop_session(session.external_name)
        elif action == "start":
            info = client.start_session(session.external_name)
            if str((info or {}).get("status") or "").upper() == "FAILED":
                # WAHA counts a FAILED session as running, so its start changes nothing: restart it instead.
                info = client.restart_session(session.external_name)
        elif action == "restart":
            info = client.restart_session(session.external_name)
        else:
            info = client.logout_session(session.external_name)
    except waha_errors.WahaAlreadyStarted as exc:
        if action != "start":
            db.session.rollback()
            raise map_waha_error(exc, session) from exc
        # Older Core images refuse to start a running session (FAILED counts as running): restart it.
        try:
            info = client.restart_session(session.external_name)
        except waha_errors.WahaError as exc2:
            db.session.rollback()
            raise map_waha_error(exc2, session) from exc2
    except waha_errors.WahaNotFound as exc:
        if action in ("start", "restart"):
            # WAHA lost the session (wiped storage, another server): build it again from what we stored.
            info = _recreate(session, client)
            action = "recreate"
        elif action == "stop":
            info = {"status": "STOPPED"}
        else:
            db.session.rollback()
            raise map_waha_error(exc, session) from exc
    except waha_errors.WahaError as exc:
        db.session.rollback()
        raise map_waha_error(exc, session) from exc
    session.desired_state = desired
    _apply_info(session, info, actor, action)
    audit.record(tenant.id, f"session.{action}", actor, target_type="session", target_id=session.id,
                 details={"status": session.status})
    db.session.commit()
    return session


def _recreate(session: WahaSession, client: Any) -> dict:
    try:
        return client.create_session(session.external_name, waha_config_for(session), start=True)
    except waha_errors.WahaError as exc:
        db.session.rollback()
        raise map_waha_error(exc, session) from exc


def start_session(tenant: Tenant, session_id: Any, actor: Actor) -> WahaSession:
    """Start the session (re-create it on WAHA if WAHA lost it); it should run from now on."""
    return _control(tenant, session_id, actor, "start", "running")


def stop_session(tenant: Tenant, session_id: Any, actor: Actor) -> WahaSession:
    """Stop the session, keeping its login; recovery leaves it stopped."""
    return _control(tenant, session_id, actor, "stop", "stopped")


def restart_session(tenant: Tenant, session_id: Any, actor: Actor) -> WahaSession:
    """Stop and start the session (re-create it on WAHA if WAHA lost it)."""
    return _control(tenant, session_id, actor, "restart", "running")


def logout_session(tenant: Tenant, session_id: Any, actor: Actor) -> WahaSession:
    """Unpair the phone; the session starts again and waits for a new QR scan."""
    return _control(tenant, session_id, actor, "logout", "running")


def delete_session(tenant: Tenant, session_id: Any, actor: Actor) -> None:
    """Delete the session on WAHA (already gone there is fine), then the row and its messages; audit it.

    Converges (see services.session_delete): the row is marked "deleting" first, so recovery never brings the
    WAHA session back; the rows go in the event workers' lock order, with deadlocks retried. When WAHA cannot be
    reached, or the rows stay busy (503 session_busy), the row stays and the delete can be repeated.
    """
    from portal.services import session_delete

    session = get_session(tenant, session_id)
    session_key, details = session.id, {"name": session.name, "external_name": session.external_name}
    client = _client(session)
    if session.desired_state != session_delete.DELETING:
        session_delete.mark_deleting(session_key)
    try:
        client.delete_session(details["external_name"])
    except waha_errors.WahaNotFound:
        pass
    except waha_errors.WahaError as exc:
        db.session.rollback()
        raise map_waha_error(exc) from exc
    session_delete.delete_rows(session_key, lambda: audit.record(
        tenant.id, "session.delete", actor, target_type="session", target_id=session_key, details=details))
    drop_qr_cache(session_key)
    pacing.reset(session_key)
    from portal.services.events import forget_session_key

    forget_session_key(session_key)


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
        log.warning("session %s (%s) is missing on WAHA server %s", session.id, session.external_name,
                    session.server.name)
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
                log.warning("session %s (%s) is missing on WAHA server %s", row.id, row.external_name,
                            row.server.name)
            else:
                _apply_info(row, info, actor, "sync")
            row.last_synced_at = now
    db.session.commit()
    if failure is not None:
        raise failure
    return rows


# ---------------------------------------------------------------------------------------------- QR, code, screen

def _expires_in(session: WahaSession) -> int | None:
    """Seconds until the shown QR rotates, from when the session entered SCAN_QR_CODE (first ~60 s, then ~20 s)."""
    if session.status_changed_at is None:
        return None
    elapsed = (utcnow() - session.status_changed_at).total_seconds()
    if elapsed < 0:
        return None
    if elapsed < QR_FIRST_LIFETIME:
        return max(1, int(QR_FIRST_LIFETIME - elapsed))
    return max(1, int(QR_NEXT_LIFETIME - (elapsed - QR_FIRST_LIFETIME) % QR_NEXT_LIFETIME))


def _not_ready(session: WahaSession, status: str | None = None, expected: str = "SCAN_QR_CODE") -> Conflict:
    status = status or session.status
    return Conflict(f"The session is {status}; it must be {expected} for this.", code="session_not_ready",
                    details={"status": status, "expected": [expected]})


def _qr_from_cache(raw: bytes, session: WahaSession) -> QrCode:
    cached = json.loads(raw)
    if "status" in cached:
        raise _not_ready(session, cached["status"])
    return QrCode(mimetype=cached["mimetype"], data=cached["data"], expires_in=_expires_in(session))


def _fetch_qr(session: WahaSession) -> dict:
    """One QR call to WAHA; a status mismatch is recorded on the session and answered as a negative entry."""
    try:
        return _client(session).get_qr(session.external_name)
    except waha_errors.WahaSessionNotReady as exc:
        if exc.session_status:
            apply_status(session, exc.session_status, source="qr")
            db.session.commit()
        return {"status": exc.session_status or session.status}
    except waha_errors.WahaError as exc:
        raise map_waha_error(exc, session) from exc


def get_qr(tenant: Tenant, session_id: Any) -> QrCode:
    """The QR to scan, only while the session is in SCAN_QR_CODE (else Conflict "session_not_ready").

    The answer is cached in Redis under `qr:<session id>` for a few seconds, and only the holder of a short
    lock asks WAHA when the cache is empty; other viewers wait up to a second for its answer. So any number of
    viewers costs WAHA at most one QR call per cache window.
    """
    session = get_session(tenant, session_id)
    if session.status != "SCAN_QR_CODE":
        raise _not_ready(session)
    key, lock = _qr_key(session.id), _qr_key(session.id) + ":lock"
    try:
        client = redis_store.client
        cached = client.get(key)
        if cached:
            return _qr_from_cache(cached, session)
        token = secrets.token_hex(8)
        deadline = time.monotonic() + QR_WAIT_SECONDS
        while True:
            if client.set(lock, token, nx=True, px=int(QR_LOCK_SECONDS * 1000)):
                try:
                    cached = client.get(key)
                    if cached:
                        return _qr_from_cache(cached, session)
                    answer = _fetch_qr(session)
                    raw = json.dumps(answer)
                    client.set(key, raw, px=int(QR_CACHE_SECONDS * 1000))
                    return _qr_from_cache(raw.encode(), session)
                finally:
                    if client.get(lock) == token.encode():
                        client.delete(lock)
            time.sleep(0.05)
            cached = client.get(key)
            if cached:
                return _qr_from_cache(cached, session)
            if time.monotonic() > deadline:
                raise Upstream("WAHA is slow to hand out the QR code; try again in a second.", retry_after=1)
    except redis.RedisError:
        log.warning("QR cache unavailable; asking WAHA directly", exc_info=True)
        return _qr_from_cache(json.dumps(_fetch_qr(session)).encode(), session)


def request_pairing_code(tenant: Tenant, session_id: Any, phone: str, actor: Actor) -> str:
    """A code ("ABCD-EFGH") to type on the phone instead of scanning the QR; session must be in SCAN_QR_CODE."""
    session = get_session(tenant, session_id)
    digits = phone_digits(phone, "phone")
    if session.status != "SCAN_QR_CODE":
        raise _not_ready(session)
    try:
        code = _client(session).request_pairing_code(session.external_name, digits)
    except waha_errors.WahaError as exc:
        if isinstance(exc, waha_errors.WahaSessionNotReady) and exc.session_status:
            apply_status(session, exc.session_status, source="pairing")
            db.session.commit()
        raise map_waha_error(exc, session) from exc
    # The code itself is a credential for a few minutes: it stays out of the audit log.
    audit.record(tenant.id, "session.pairing_code", actor, target_type="session", target_id=session.id,
                 details={"phone_suffix": digits[-4:]}, commit=True)
    return code


def get_screenshot(tenant: Tenant, session_id: Any, *, may_link: bool = True) -> dict:
    """A screenshot of the running session as {"mimetype", "data" (base64)}; Conflict while it is stopped.

    While the session waits for a scan the screen is its QR code: a caller that may not link a phone
    (`may_link=False`, see permissions.LINK_PHONE) is refused then.
    """
    session = get_session(tenant, session_id)
    if session.status == "STOPPED":
        raise _not_ready(session, expected="running")
    if session.status == "SCAN_QR_CODE" and not may_link:
        raise Forbidden("The screen shows the QR code while the session waits for a scan; seeing it needs the "
                        "permission to link a phone.", details={"required": LINK_PHONE})
    try:
        shot = _client(session).get_screenshot(session.external_name)
    except waha_errors.WahaNotFound:
        # WAHA answers 404 for a session that is not running.
        raise _not_ready(session, "STOPPED", expected="running") from None
    except waha_errors.WahaError as exc:
        raise map_waha_error(exc, session) from exc
    return {"mimetype": _sniffed_mimetype(shot["data"]) or shot["mimetype"], "data": shot["data"]}


def _sniffed_mimetype(data: str) -> str | None:
    # GOWS and NOWEB send the QR as PNG but label it image/jpeg; the bytes tell the truth.
    try:
        head = base64.b64decode(data[:16])
    except (binascii.Error, ValueError):
        return None
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


# ---------------------------------------------------------------------------------------------- watching

# Statuses on the way to WORKING: a page showing one keeps polling and syncs with WAHA now and then.
TRANSITIONAL = ("STARTING", "SCAN_QR_CODE", "PASSKEY_REQUIRED", "PASSKEY_CONFIRMATION_REQUIRED")
WATCH_SYNC_SECONDS = 3
# A settled session (WORKING, STOPPED, FAILED) still changes without warning (the phone logs out, WhatsApp
# fails): its watchers ask WAHA too, less often. Webhooks usually tell the portal sooner.
SETTLED_SYNC_SECONDS = 10


def watch_session(tenant: Tenant, session: WahaSession, *, may_link: bool = True) -> dict[str, Any]:
    """What a person watching a session sees: its status (synced with WAHA at most every few seconds, across
    all viewers: often while it is on its way to WORKING, less often once settled), its QR when it waits for a
    scan and the watcher may link a phone (`may_link`, see permissions.LINK_PHONE), and whether it is still on
    its way (the page keeps following it in every status).

    Returns {"session", "qr", "qr_error", "qr_error_code", "sync_error", "sync_error_code", "qr_expired",
    "polling", "settled"}; "polling" is
    always true, "settled" tells a status that is not on the way to WORKING.
    """
    sync_error = sync_error_code = qr_error_code = None
    window = WATCH_SYNC_SECONDS if session.status in TRANSITIONAL else SETTLED_SYNC_SECONDS
    if _watch_sync_due(session.id, window):
        try:
            session = sync_session(tenant, session.id)
        except ServiceError as exc:
            sync_error, sync_error_code = exc.message, exc.code
    qr = qr_error = None
    if session.status == "SCAN_QR_CODE" and may_link:
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
    return {"session": session, "qr": qr, "qr_error": qr_error, "sync_error": sync_error,
            "qr_error_code": qr_error_code, "sync_error_code": sync_error_code,
            "qr_expired": failed_waiting_for_scan(session), "polling": True,
            "settled": session.status not in TRANSITIONAL}


def failed_waiting_for_scan(session: WahaSession) -> bool:
    """True when the session turned FAILED straight from SCAN_QR_CODE: WAHA gives up after its QR codes
    expired unscanned, which a restart fixes (not a fault of WhatsApp)."""
    if session.status != "FAILED":
        return False
    last = audit.list_events(session.tenant_id, audit.AuditFilters(action="session.status", target_id=session.id),
                             limit=1)
    details = (last[0].details or {}) if last else {}
    return details.get("from") == "SCAN_QR_CODE" and details.get("to") == "FAILED"


def _watch_sync_due(session_id: str, window: int = WATCH_SYNC_SECONDS) -> bool:
    """True for the first caller in each window (shared across processes through Redis)."""
    try:
        return bool(redis_store.client.set(f"portal:web:sync:{session_id}", "1", nx=True, ex=window))
    except redis.RedisError:  # Redis down: the page still works, it just reads what the database knows
        return False
