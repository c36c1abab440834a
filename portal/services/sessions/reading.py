"""Reading a tenant's sessions (another tenant's session is simply not found) and the WAHA client of one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from portal import rawsql
from portal.extensions import db
from portal.i18n import N_
from portal.models import Tenant, WahaSession
from portal.services import servers
from portal.services.errors import NotFound


def _client(session: WahaSession):
    return servers.client_for(session.server)


def get_session(tenant: Tenant, session_id: Any) -> WahaSession:
    """One of the tenant's sessions; NotFound("session_not_found") for unknown ids and other tenants' ids."""
    session = None
    if session_id:
        # The server comes along in the same query: almost every caller goes on to talk to WAHA.
        session = db.session.scalar(
            select(WahaSession)
            .options(joinedload(WahaSession.server))
            .where(WahaSession.id == str(session_id), WahaSession.tenant_id == tenant.id)
        )
    if session is None:
        raise NotFound(N_("No such session."), code="session_not_found")
    return session


def list_sessions(tenant: Tenant, *, status: str | None = None) -> list[WahaSession]:
    """The tenant's sessions, oldest first, optionally only those in one status."""
    stmt = WahaSession.scoped(tenant.id)
    if status:
        stmt = stmt.where(WahaSession.status == status)
    return list(db.session.scalars(stmt.order_by(WahaSession.created_at, WahaSession.id)))


# The tenant's sessions as a list page's filter and links name them; built once (bound parameter, two columns).
_SESSION_NAMES = rawsql.RawStatement(
    select(WahaSession.id, WahaSession.name)
    .where(WahaSession.tenant_id == bindparam("tenant_id"))
    .order_by(WahaSession.created_at, WahaSession.id)
)


def session_names(tenant: Tenant) -> list[Any]:
    """The tenant's sessions, oldest first, as rows of (id, name) only: what a filter menu or a link needs."""
    return rawsql.rows(_SESSION_NAMES, db.session.connection(), {"tenant_id": tenant.id})
