"""Data protection's part of the /waha route table (a person's export and erase), its error codes and DTOs;
`portal.api.openapi` puts them into the document."""

from __future__ import annotations

from portal.api.route_table import AUTH, ApiRoute, ErrorCode
from portal.api.schemas import privacy as p

PRIVACY_ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(404, "contact_not_found", "Your tenant holds no data about that number (or no such contact)."),
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

PRIVACY_MODELS = (p.EraseResponse, p.EraseCounts)
