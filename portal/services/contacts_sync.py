"""Importing a session's contacts from WhatsApp: the names saved on the phone and the push names people chose.

A member asks (`request_sync`: the session must be WORKING; audited as contacts.sync) and a job does the work
(`sync_contacts`, queued on the maintenance queue so the click answers at once): it pages through WAHA's contact
list (`GET /api/contacts/all`, SYNC_PAGE at a time, at most SYNC_MAX) and upserts each person into `contacts`.
What event processing wrote stays: a saved or push name is filled in only where the row has none. Groups,
channels and broadcast lists are not people and are skipped. The outcome is audited as contacts.synced (or
contacts.sync_failed with the reason code of WAHA's failure; the pages imported before it stay).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from portal.extensions import db
from portal.i18n import N_f
from portal.models import Contact, Tenant, WahaSession, utcnow
from portal.queue import JOB_SYNC_CONTACTS, QUEUE_MAINTENANCE, enqueue
from portal.services import audit, upstream
from portal.services.audit import SYSTEM, Actor
from portal.services.errors import Conflict
from portal.services.recipients import phone_of
from portal.services.sessions import get_session
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

SYNC_PAGE = 100
SYNC_MAX = 20_000
NAME_MAX = 200
NOT_PEOPLE = ("@g.us", "@newsletter", "@broadcast")


def request_sync(tenant: Tenant, session_id: Any, actor: Actor) -> WahaSession:
    """Queue the import of the session's WhatsApp contacts; Conflict session_not_ready unless it is WORKING."""
    session = get_session(tenant, session_id)
    if session.status != "WORKING":
        raise Conflict(
            N_f("The session is %(status)s; it must be WORKING to read its contacts.", status=session.status),
            code="session_not_ready",
            details={"status": session.status, "expected": ["WORKING"]},
        )
    audit.record(
        tenant.id,
        "contacts.sync",
        actor,
        target_type="session",
        target_id=session.id,
        details={"session": session.name},
        commit=True,
    )
    enqueue(JOB_SYNC_CONTACTS, session.id, queue=QUEUE_MAINTENANCE)
    return session


def _name(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return " ".join(value.split())[:NAME_MAX]


def _chat_id(entry: dict) -> str | None:
    """The contact's chat id as the portal keys people ("4917...@c.us", "...@lid"); None for anything else."""
    value = entry.get("id")
    if isinstance(value, dict):  # whatsapp-web.js may give the id as an object
        value = value.get("_serialized")
    if not isinstance(value, str) or "@" not in value or len(value) > 128 or value.endswith(NOT_PEOPLE):
        return None
    return value


def contact_row(tenant_id: int, entry: Any, now: Any) -> dict[str, Any] | None:
    """The contacts row one entry of WAHA's list gives, or None when it is not a person."""
    chat_id = _chat_id(entry) if isinstance(entry, dict) else None
    if chat_id is None:
        return None
    return {
        "tenant_id": tenant_id,
        "chat_id": chat_id,
        "phone": phone_of(chat_id),
        "lid": chat_id if chat_id.endswith("@lid") else None,
        "saved_name": _name(entry.get("name")),
        "push_name": _name(entry.get("pushname", entry.get("pushName"))),
        "tags": [],
        "created_at": now,
        "updated_at": now,
    }


def _kept_or(column: Any, new: Any) -> Any:
    """The stored value unless it is empty; then the imported one."""
    return sa.func.coalesce(sa.func.nullif(sa.func.trim(column), ""), new)


def _upsert(rows: list[dict[str, Any]]) -> None:
    from portal.services.inbox.upkeep import insert_for  # the inbox package imports services.contacts

    stmt = insert_for(Contact)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[Contact.tenant_id, Contact.chat_id],
        set_={
            "saved_name": _kept_or(Contact.saved_name, new.saved_name),
            "push_name": _kept_or(Contact.push_name, new.push_name),
            "updated_at": new.updated_at,
        },
    )
    db.session.execute(stmt, rows)


def sync_contacts(session_id: str) -> dict[str, int]:
    """The job: import the session's contacts from WAHA, page by page (each page committed); counts of the
    entries read and the people imported. Nothing happens for a session that is gone or no longer WORKING."""
    from portal.services.servers import client_for

    session = db.session.get(WahaSession, session_id)  # the portal's own id, queued by request_sync
    counts = {"read": 0, "imported": 0}
    if session is None or session.status != "WORKING":
        return counts
    client = client_for(session.server)
    tenant_id, target = session.tenant_id, {"target_type": "session", "target_id": session.id}
    try:
        while counts["read"] < SYNC_MAX:
            page = client.list_contacts(session.external_name, limit=SYNC_PAGE, offset=counts["read"])
            now = utcnow()
            rows = {row["chat_id"]: row for e in page if (row := contact_row(tenant_id, e, now)) is not None}
            if rows:
                _upsert(list(rows.values()))
                db.session.commit()
            counts["read"] += len(page)
            counts["imported"] += len(rows)
            if len(page) < SYNC_PAGE:
                break
    except waha_errors.WahaError as exc:
        db.session.rollback()
        upstream.log_failure("contacts sync", exc, session=session_id)
        details = {**counts, "reason": upstream.reason(exc)}
        audit.record(tenant_id, "contacts.sync_failed", SYSTEM, **target, details=details, commit=True)
        return counts
    audit.record(tenant_id, "contacts.synced", SYSTEM, **target, details=dict(counts), commit=True)
    return counts
