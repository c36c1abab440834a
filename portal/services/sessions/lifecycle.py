"""A session's life: create it on a WAHA server, start, stop, restart, log out and delete it; each audited."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import Tenant, WahaSession, utcnow
from portal.services import audit, idempotency, pacing, quotas, servers, session_secrets
from portal.services.audit import Actor
from portal.services.dashboard import forget_today
from portal.services.errors import Conflict, Invalid, NotFound, ServiceError
from portal.services.sessions import deletion
from portal.services.sessions.qr_cache import drop_qr_cache
from portal.services.sessions.reading import _client, get_session
from portal.services.sessions.status import _apply_info
from portal.services.sessions.validation import (
    _clean_config,
    _clean_engine,
    _clean_events,
    _clean_name,
    _clean_webhook_url,
    external_name_for,
)
from portal.services.sessions.waha_config import waha_config_for
from portal.services.waha_errors import map_waha_error
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- create


def _discard_on_waha(client: Any, external_name: str) -> bool:
    """Best effort: delete a session WAHA created but the portal could not keep. True when it is gone."""
    try:
        client.delete_session(external_name)
        return True
    except waha_errors.WahaError:
        # The orphan reconciler deletes WAHA sessions that carry our metadata but have no row.
        log.error(
            "could not delete orphan session %s on WAHA at %s", external_name, client.settings.base_url, exc_info=True
        )
        return False


def _replay(tenant: Tenant, record: Any) -> WahaSession:
    try:
        return get_session(tenant, (record.response or {}).get("session_id"))
    except NotFound:
        # The key's session was deleted since: the key is spent, not the session missing (a 404 would say the
        # create itself had failed to find something).
        raise Conflict(
            N_("The session created with this Idempotency-Key was deleted since; use a new key to create another."),
            code="idempotency_key_reused",
        ) from None


def create_session(
    tenant: Tenant,
    actor: Actor,
    *,
    name: str,
    engine: str | None = None,
    webhook_url: str | None = None,
    webhook_events: list[str] | None = None,
    config: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> WahaSession:
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
    fingerprint = idempotency.fingerprint(
        {"name": name, "engine": engine, "webhook_url": webhook_url, "webhook_events": webhook_events, "config": config}
    )

    # One create at a time per tenant: the limit and the name check stay true until we commit.
    db.session.execute(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update())
    if key:
        record = idempotency.lookup(tenant.id, "session.create", key, fingerprint)
        if record is not None:
            db.session.rollback()
            return _replay(tenant, record)
    if db.session.scalar(select(WahaSession.id).where(WahaSession.tenant_id == tenant.id, WahaSession.name == name)):
        db.session.rollback()
        raise Conflict(
            N_f("A session named '%(name)s' already exists.", name=name),
            code="session_exists",
            details={"fields": [{"field": "name", "message": "This name is taken."}]},
        )
    try:
        quotas.check_sessions(tenant)  # locks the tenant's row until the session is stored: exact under races
    except ServiceError:
        db.session.rollback()
        raise

    try:
        server = servers.pick_server()
    except ServiceError:
        db.session.rollback()
        raise
    if engine and server.engine and server.engine.upper() != engine:
        db.session.rollback()
        raise Invalid.field(
            "engine", N_f("The WAHA servers with room run the %(engine)s engine.", engine=server.engine)
        )

    session = WahaSession(
        tenant_id=tenant.id,
        server_id=server.id,
        server=server,
        name=name,
        external_name=external_name_for(tenant.id, name),
        engine=engine or server.engine,
        status="STARTING",
        desired_state="running",
        webhook_url=webhook_url,
        webhook_events=webhook_events,
        config=config,
        hmac_key=secrets.token_urlsafe(32),
        webhook_secret=session_secrets.new_secret(),
        status_changed_at=utcnow(),
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
        raise Conflict(N_f("A session named '%(name)s' already exists.", name=name), code="session_exists") from None

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
    audit.record(
        tenant.id,
        "session.create",
        actor,
        target_type="session",
        target_id=session.id,
        details={"name": name, "external_name": external, "server": server_name, "engine": session.engine},
    )
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
    audit.record(
        tenant.id,
        f"session.{action}",
        actor,
        target_type="session",
        target_id=session.id,
        details={"status": session.status},
    )
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

    Converges (see sessions.deletion): the row is marked "deleting" first, so recovery never brings the
    WAHA session back; the rows go in the event workers' lock order, with deadlocks retried. When WAHA cannot be
    reached, or the rows stay busy (503 session_busy), the row stays and the delete can be repeated.
    """
    session = get_session(tenant, session_id)
    session_key, details = session.id, {"name": session.name, "external_name": session.external_name}
    client = _client(session)
    if session.desired_state != deletion.DELETING:
        deletion.mark_deleting(session_key)
    try:
        client.delete_session(details["external_name"])
    except waha_errors.WahaNotFound:
        pass
    except waha_errors.WahaError as exc:
        db.session.rollback()
        raise map_waha_error(exc) from exc
    keys = deletion.delete_rows(
        session_key,
        lambda: audit.record(
            tenant.id, "session.delete", actor, target_type="session", target_id=session_key, details=details
        ),
    )
    from portal.services.media_files import delete_files

    delete_files(keys)
    forget_today(tenant.id)  # the day's message counts included the session's
    drop_qr_cache(session_key)
    pacing.reset(session_key)
    from portal.services.events import forget_session_key

    forget_session_key(session_key)
