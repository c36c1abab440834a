"""The CSV exports' part of the /waha route table; `portal.api.openapi` puts them into the document."""

from __future__ import annotations

from portal.api.route_table import AUTH, ApiRoute
from portal.api.schemas import exports as x

_HOW = (
    "Streamed as it is read (constant memory at any size), newest first, UTF-8 with a header row; an empty result "
    "is the header row alone. Times are ISO 8601 in UTC. A cell that would start a spreadsheet formula (= + - @, "
    "tab, carriage return) gets a leading apostrophe. X-Export-Rows gives the rows that matched when the export "
    "started. Each export is audited (export.<kind>, with its filters and row count)."
)

EXPORT_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET",
        "/waha/messages/export",
        "api.export_messages",
        "Export messages (CSV)",
        "Messages",
        "messages:read",
        csv=True,
        query=x.MessageExportQuery,
        errors=(400, *AUTH, 404),
        description="The filters of GET /waha/messages, without cursor and limit (404 session_not_found for a "
        "session that is not yours). Columns: id, created_at, session_id, session_name, direction, chat_id, body, "
        "media_kind, media_filename, status, error. " + _HOW,
    ),
    ApiRoute(
        "GET",
        "/waha/audit/export",
        "api.export_audit",
        "Export the audit log (CSV)",
        "Audit",
        "audit:read",
        csv=True,
        query=x.AuditExportQuery,
        errors=(400, *AUTH),
        description="The audit log's filters: action (prefix), actor (part of the email or name), target (id), "
        "since, until. Needs audit:read (a token gets it only when created with that scope). Columns: id, "
        "created_at, action, actor_type, actor_id, actor_label, target_type, target_id, ip, request_id, details "
        "(JSON). " + _HOW,
    ),
    ApiRoute(
        "GET",
        "/waha/webhooks/deliveries/export",
        "api.export_deliveries",
        "Export webhook deliveries (CSV)",
        "Webhooks",
        "webhooks:read",
        csv=True,
        query=x.DeliveryExportQuery,
        errors=(400, *AUTH, 404),
        description="One row per delivery attempt, with the filters of GET /waha/webhooks/deliveries and a time "
        "range (404 endpoint_not_found for an endpoint that is not yours). Columns: id, created_at, endpoint_id, "
        "session_id, url, event_type, msg_id, attempt, status, response_status, duration_ms, error, sent_at. " + _HOW,
    ),
    ApiRoute(
        "GET",
        "/waha/contacts/export",
        "api.export_contacts",
        "Export contacts (CSV)",
        "Inbox",
        "messages:read",
        csv=True,
        query=x.ContactExportQuery,
        errors=(400, *AUTH),
        description="The contacts matching q, as GET /waha/contacts searches. Columns: id, name (saved name, else "
        "push name), phone (+digits), chat_id, lid, saved_name, push_name, tags (comma separated), on_whatsapp "
        "(yes, no or empty while unknown), first_message_at, last_message_at, created_at. " + _HOW,
    ),
)
