"""Data protection over the API: a person's data as a ZIP (GET /waha/contacts/<phone>/export) and their erase
(DELETE /waha/contacts/<phone>). Both need contacts:privacy (owners and admins; a token only when given that
scope); a number the tenant holds nothing about is 404 contact_not_found."""

from __future__ import annotations

from flask import Response

from portal.api import bp
from portal.api.auth import api_route
from portal.api.common import actor, query, send, tenant
from portal.api.schemas.privacy import EraseQuery, EraseResponse
from portal.services import privacy

PRIVACY = "contacts:privacy"


@bp.get("/contacts/<phone>/export")
@api_route(PRIVACY)
def export_contact(phone: str) -> Response:
    subject = privacy.by_phone(tenant(), phone)
    path = privacy.export_contact(tenant(), actor(), subject)
    response = Response(privacy.stream_file(path), mimetype="application/zip", direct_passthrough=True)
    response.headers["Content-Disposition"] = f'attachment; filename="contact-{subject.phone or "export"}.zip"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.delete("/contacts/<phone>")
@api_route(PRIVACY)
def erase_contact(phone: str) -> Response:
    options = query(EraseQuery)
    subject = privacy.by_phone(tenant(), phone)
    report = privacy.erase_contact(tenant(), actor(), subject, keep_opt_out=options.keepOptOut)
    return send(EraseResponse.of(subject.masked, report))
