"""CSV exports over the API: GET <list>/export with the list's filters (no cursor or limit), streamed, audited.

/waha/messages/export, /waha/audit/export, /waha/webhooks/deliveries/export, /waha/contacts/export; each needs the
permission of its list (the audit log: audit:read, which a token has only when it was given that scope)."""

from __future__ import annotations

from flask import Response

from portal.api import bp
from portal.api.auth import api_route
from portal.api.common import actor, dto_field_names, query, tenant
from portal.api.schemas.exports import AuditExportQuery, ContactExportQuery, DeliveryExportQuery, MessageExportQuery
from portal.services import exports
from portal.services.audit import AuditFilters
from portal.services.messages import LogFilters
from portal.streaming import csv_response


@bp.get("/messages/export")
@api_route("messages:read")
def export_messages() -> Response:
    f = query(MessageExportQuery)
    filters = LogFilters(
        session_id=f.sessionId,
        direction=f.direction,
        status=f.status,
        chat_id=f.chatId,
        q=f.q,
        since=f.since,
        until=f.until,
    )
    with dto_field_names():
        return csv_response(exports.export_messages(tenant(), actor(), filters))


@bp.get("/audit/export")
@api_route("audit:read")
def export_audit() -> Response:
    f = query(AuditExportQuery)
    filters = AuditFilters(action=f.action, actor=f.actor, target_id=f.target, since=f.since, until=f.until)
    return csv_response(exports.export_audit(tenant(), actor(), filters))


@bp.get("/webhooks/deliveries/export")
@api_route("webhooks:read")
def export_deliveries() -> Response:
    f = query(DeliveryExportQuery)
    export = exports.export_deliveries(
        tenant(), actor(), endpoint_id=f.endpointId, status=f.status, since=f.since, until=f.until
    )
    return csv_response(export)


@bp.get("/contacts/export")
@api_route("messages:read")
def export_contacts() -> Response:
    f = query(ContactExportQuery)
    return csv_response(exports.export_contacts(tenant(), actor(), q=f.q))
