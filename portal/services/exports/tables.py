"""The four exports: the message log, the audit log, the webhook delivery log and the contacts, each with the
filters of its page, read through the same conditions as the page's list (so the file holds the rows the list
shows, newest first), audited when it starts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Contact, Tenant, WahaSession, WebhookDelivery, utcnow
from portal.services import audit, contacts, forwarding
from portal.services.audit import Actor, AuditFilters
from portal.services.exports.stream import (
    Export,
    Keyset,
    batches,
    by_id,
    by_time,
    csv_chunks,
    from_json,
    guard,
    iso,
)
from portal.services.messages.reading import LogFilters, log_query, log_statement

_UNSAFE_NAME = re.compile(r"[^a-z0-9-]+")

MESSAGE_COLUMNS = (
    "id",
    "created_at",
    "session_id",
    "session_name",
    "direction",
    "chat_id",
    "body",
    "media_kind",
    "media_filename",
    "status",
    "error",
)
AUDIT_COLUMNS = (
    "id",
    "created_at",
    "action",
    "actor_type",
    "actor_id",
    "actor_label",
    "target_type",
    "target_id",
    "ip",
    "request_id",
    "details",
)
DELIVERY_COLUMNS = (
    "id",
    "created_at",
    "endpoint_id",
    "session_id",
    "url",
    "event_type",
    "msg_id",
    "attempt",
    "status",
    "response_status",
    "duration_ms",
    "error",
    "sent_at",
)
CONTACT_COLUMNS = (
    "id",
    "name",
    "phone",
    "chat_id",
    "lid",
    "saved_name",
    "push_name",
    "tags",
    "on_whatsapp",
    "first_message_at",
    "last_message_at",
    "created_at",
)


def _filename(kind: str, tenant: Tenant) -> str:
    slug = _UNSAFE_NAME.sub("-", tenant.slug.lower()).strip("-") or "tenant"
    return f"{kind}-{slug}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.csv"


def _shown(filters: dict[str, Any]) -> dict[str, Any]:
    """The filters given, as the audit log keeps them (times in ISO 8601)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in filters.items() if v not in (None, "")}


def _start(
    tenant: Tenant, actor: Actor, kind: str, filters: dict[str, Any], keyset: Keyset, chunks: Iterator[str]
) -> Export:
    """Count the rows, audit the export (committed before the first byte goes out) and hand back the stream."""
    rows = keyset.count()
    audit.record(
        tenant.id,
        f"export.{kind}",
        actor,
        target_type="export",
        target_id=kind,
        details={"format": "csv", "filters": _shown(filters), "rows": rows},
        commit=True,
    )
    return Export(kind=kind, filename=_filename(kind, tenant), rows=rows, chunks=chunks)


# ---- messages ----------------------------------------------------------------------------------------------------


def export_messages(tenant: Tenant, actor: Actor, filters: LogFilters) -> Export:
    """The message log with `filters` (as the log page and GET /waha/messages take them) as CSV, newest first.

    Invalid for a bad filter, NotFound for a session that is not the tenant's; both before anything is audited."""
    query = log_query(tenant, **filters.query())
    keyset = Keyset(
        first=log_statement(query), after=log_statement(query, after=True), params=query.params, id_at=0, time_at=1
    )
    named = select(WahaSession.id, WahaSession.name).where(WahaSession.tenant_id == tenant.id)
    names: dict[str, str] = dict(db.session.execute(named).tuples().all())

    def row(r: Any) -> tuple[Any, ...]:
        # LogRow: id, created_at, session_id, direction, chat_id, body, media, status, error, edited_at, revoked_at
        media = from_json(r[6]) or {}
        return (
            r[0],
            iso(r[1]),
            r[2],
            guard(names.get(r[2])),
            r[3],
            guard(r[4]),
            guard(r[5]),
            guard(media.get("kind")),
            guard(media.get("filename")),
            r[7],
            guard(r[8]),
        )

    return _start(tenant, actor, "messages", filters.query(), keyset, csv_chunks(MESSAGE_COLUMNS, batches(keyset), row))


# ---- the audit log -----------------------------------------------------------------------------------------------

_AUDIT = (
    AuditEvent.id,
    AuditEvent.created_at,
    AuditEvent.action,
    AuditEvent.actor_type,
    AuditEvent.actor_id,
    AuditEvent.actor_label,
    AuditEvent.target_type,
    AuditEvent.target_id,
    AuditEvent.ip,
    AuditEvent.request_id,
    AuditEvent.details,
)


def _details(value: Any) -> str | None:
    value = from_json(value)
    if not value:
        return ""
    return guard(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str, separators=(",", ":")))


def export_audit(tenant: Tenant, actor: Actor, filters: AuditFilters) -> Export:
    """The audit log with the audit page's filters as CSV, newest first (details as compact JSON)."""
    base = audit.filtered_events(tenant.id, filters, *_AUDIT)
    keyset = by_time(base, AuditEvent.created_at, AuditEvent.id, {}, id_at=0, time_at=1)

    def row(r: Any) -> tuple[Any, ...]:
        return (
            r[0],
            iso(r[1]),
            guard(r[2]),
            r[3],
            guard(r[4]),
            guard(r[5]),
            guard(r[6]),
            guard(r[7]),
            guard(r[8]),
            guard(r[9]),
            _details(r[10]),
        )

    shown = {
        "action": filters.action,
        "actor": filters.actor,
        "target": filters.target_id,
        "since": filters.since,
        "until": filters.until,
    }
    return _start(tenant, actor, "audit", shown, keyset, csv_chunks(AUDIT_COLUMNS, batches(keyset), row))


# ---- webhook deliveries ------------------------------------------------------------------------------------------

_DELIVERY = (
    WebhookDelivery.id,
    WebhookDelivery.created_at,
    WebhookDelivery.endpoint_id,
    WebhookDelivery.session_id,
    WebhookDelivery.url,
    WebhookDelivery.event_type,
    WebhookDelivery.msg_id,
    WebhookDelivery.attempt,
    WebhookDelivery.status,
    WebhookDelivery.response_status,
    WebhookDelivery.duration_ms,
    WebhookDelivery.error,
    WebhookDelivery.sent_at,
)


def export_deliveries(
    tenant: Tenant,
    actor: Actor,
    *,
    endpoint_id: Any = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Export:
    """The delivery log (of one endpoint, or of all; one status; created in [since, until)) as CSV, newest first,
    one row per attempt. NotFound for an endpoint that is not the tenant's, Invalid for an unknown status."""
    base = forwarding.filtered_deliveries(
        tenant, *_DELIVERY, endpoint_id=endpoint_id, status=status, since=since, until=until
    )
    keyset = by_time(base, WebhookDelivery.created_at, WebhookDelivery.id, {}, id_at=0, time_at=1)

    def row(r: Any) -> tuple[Any, ...]:
        return (
            r[0],
            iso(r[1]),
            r[2],
            r[3],
            guard(r[4]),
            guard(r[5]),
            guard(r[6]),
            r[7],
            r[8],
            r[9],
            r[10],
            guard(r[11]),
            iso(r[12]),
        )

    shown = {"endpoint": endpoint_id, "status": status, "since": since, "until": until}
    return _start(tenant, actor, "deliveries", shown, keyset, csv_chunks(DELIVERY_COLUMNS, batches(keyset), row))


# ---- contacts ----------------------------------------------------------------------------------------------------

_CONTACT = (
    Contact.id,
    Contact.saved_name,
    Contact.push_name,
    Contact.phone,
    Contact.chat_id,
    Contact.lid,
    Contact.tags,
    Contact.wa_exists,
    Contact.first_message_at,
    Contact.last_message_at,
    Contact.created_at,
)
_ON_WHATSAPP = {True: "yes", False: "no", None: ""}


def export_contacts(tenant: Tenant, actor: Actor, *, q: str | None = None) -> Export:
    """The contacts (those matching `q`, as the contacts page searches) as CSV, newest first. `name` is the saved
    name, else the push name (empty when WhatsApp gave neither); tags are joined with ", "."""
    contacts.check_page(q, 1)
    keyset = by_id(contacts.filtered_contacts(tenant, q, *_CONTACT), Contact.id, {}, id_at=0)

    def row(r: Any) -> tuple[Any, ...]:
        saved, push = (r[1] or "").strip(), (r[2] or "").strip()
        return (
            r[0],
            guard(saved or push),
            f"+{r[3]}" if r[3] else "",
            guard(r[4]),
            guard(r[5]),
            guard(r[1]),
            guard(r[2]),
            guard(", ".join(from_json(r[6]) or [])),
            _ON_WHATSAPP.get(r[7], ""),
            iso(r[8]),
            iso(r[9]),
            iso(r[10]),
        )

    return _start(tenant, actor, "contacts", {"q": q}, keyset, csv_chunks(CONTACT_COLUMNS, batches(keyset), row))
