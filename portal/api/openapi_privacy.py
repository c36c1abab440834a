"""Data protection's part of the /waha route table (a person's export and erase), its error codes and DTOs;
`portal.api.openapi` puts them into the document."""

from __future__ import annotations

from portal.api.route_table import AUTH, ApiRoute, ErrorCode
from portal.api.schemas import privacy as p

PRIVACY_ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(404, "contact_not_found", "Your tenant holds no data about that number (or no such contact)."),
    ErrorCode(409, "export_in_progress", "An export of the tenant is already being built; wait for it."),
    ErrorCode(404, "export_not_found", "No such export of your tenant ready to download (or its file is gone)."),
    ErrorCode(410, "export_expired", "The export's download link has expired and its file is deleted; ask again."),
)

PRIVACY_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET",
        "/waha/contacts/{phone}/export",
        "api.export_contact",
        "Export a person's data (ZIP)",
        "Data protection",
        "contacts:privacy",
        binary=True,
        errors=(400, *AUTH, 404, 503),
        description="A ZIP with contact.json (the contact, opt-out state, campaign recipient rows, send queue "
        "entries, chats and their notes), messages.json (every message to or from the number, oldest first; "
        "`file` names its stored file) and media/ (the stored files). phone in international form (+49170..., "
        "or digits). Audited as contact.export with the number masked.",
    ),
    ApiRoute(
        "DELETE",
        "/waha/contacts/{phone}",
        "api.erase_contact",
        "Erase a person",
        "Data protection",
        "contacts:privacy",
        response=p.EraseResponse,
        query=p.EraseQuery,
        errors=(400, *AUTH, 404, 503),
        description="Deletes the number's messages and stored files, chats and notes, send queue entries, opt-out "
        "(unless keepOptOut), webhook events and forwarded copies naming it, and the contact; campaign recipient "
        "rows keep their place without the number. WAHA is asked to delete the chat on each session. Messages "
        "arriving during the erase are erased too; later ones start a new record. Audited as contact.erase with "
        "the number masked and hashed, and the counts. 503 `session_busy` when the sessions' rows stay locked by other "
        "work: nothing was half-erased, repeat the call.",
    ),
)

PRIVACY_ROUTES += (
    ApiRoute(
        "POST",
        "/waha/tenant/exports",
        "api.request_tenant_export",
        "Export the whole tenant (ZIP, built by a job)",
        "Data protection",
        "contacts:privacy",
        ok=202,
        response=p.TenantExportResponse,
        errors=(*AUTH, 409),
        description="Queues a ZIP of everything the tenant holds: settings, members, sessions (without secrets), "
        "contacts, chats and notes, messages, the send queue, campaigns, opt-outs, webhook endpoints (without "
        "secrets), the audit log and the stored media files. Poll GET /waha/tenant/exports until its state is "
        "ready, then download it from downloadUrl until expiresAt (TENANT_EXPORT_TTL_HOURS). One at a time: 409 "
        "`export_in_progress`. Audited as tenant.export_request.",
    ),
    ApiRoute(
        "GET",
        "/waha/tenant/exports",
        "api.list_tenant_exports",
        "List the tenant's exports",
        "Data protection",
        "contacts:privacy",
        response=p.TenantExportList,
        errors=AUTH,
        description="The latest 10, newest first, with their state and, once ready, the download address.",
    ),
    ApiRoute(
        "GET",
        "/waha/tenant/exports/{export_id}/download",
        "api.download_tenant_export",
        "Download a tenant export (ZIP)",
        "Data protection",
        "contacts:privacy",
        binary=True,
        errors=(*AUTH, 404, 410, 503),
        description="The ZIP of a ready export; 404 `export_not_found` for another tenant's or one not ready, 410 "
        "`export_expired` after expiresAt. Audited as tenant.export_download.",
    ),
    ApiRoute(
        "POST",
        "/waha/tenant/deletion",
        "api.request_tenant_deletion",
        "Ask for the tenant's deletion",
        "Data protection",
        "tenant:delete",
        ok=202,
        body=p.DeletionDto,
        response=p.DeletionResponse,
        errors=(400, *AUTH),
        description="confirm must repeat the tenant's slug (else 400 naming `confirm`). The tenant is deactivated at "
        "once (its tokens stop working, its sessions are stopped on WAHA) and deleted with everything it holds, "
        "WAHA sessions and files included, at scheduledFor (TENANT_DELETION_GRACE_DAYS later). The owner cancels in "
        "the portal (/admin/privacy/deletions) or a platform admin does, until then. Audited for the tenant and the "
        "platform as tenant.deletion_request.",
    ),
)

PRIVACY_MODELS = (
    p.EraseResponse,
    p.EraseCounts,
    p.TenantExportResponse,
    p.TenantExportList,
    p.DeletionDto,
    p.DeletionResponse,
)
