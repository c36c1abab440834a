"""The whole tenant over the API: an export of everything it holds (a job builds the ZIP: POST, then poll the
list until it is ready and download it) and the owner's deletion request with its grace period. Exports need
contacts:privacy, the deletion tenant:delete (owners; a token only when given that scope). The deletion
deactivates the tenant at once, so its tokens stop working: it is cancelled in the portal (the owner's
/admin/privacy/deletions page, or a platform admin) until the grace period ends."""

from __future__ import annotations

from flask import Response, url_for

from portal.api import bp
from portal.api.auth import api_route
from portal.api.common import actor, json_body, send, tenant
from portal.api.schemas.privacy import DeletionDto, DeletionResponse, TenantExportList, TenantExportResponse
from portal.services import privacy
from portal.services.errors import NotFound
from portal.storage.serving import send_stored


def _export(export: object) -> TenantExportResponse:
    download = url_for("api.download_tenant_export", export_id=export.id)  # type: ignore[attr-defined]
    return TenantExportResponse.of(export, download)


@bp.post("/tenant/exports")
@api_route("contacts:privacy")
def request_tenant_export() -> Response:
    return send(_export(privacy.request_export(tenant(), actor())), 202)


@bp.get("/tenant/exports")
@api_route("contacts:privacy")
def list_tenant_exports() -> Response:
    return send(TenantExportList(data=[_export(export) for export in privacy.list_exports(tenant())]))


@bp.get("/tenant/exports/<export_id>/download")
@api_route("contacts:privacy")
def download_tenant_export(export_id: str) -> Response:
    stored = privacy.export_file(tenant(), export_id, actor())  # an id that cannot be one is not found there
    missing = NotFound("The export's file is gone.", code="export_not_found")
    return send_stored(stored, as_attachment=True, missing=missing, cache_control="private, no-store")


@bp.post("/tenant/deletion")
@api_route("tenant:delete")
def request_tenant_deletion() -> Response:
    dto = json_body(DeletionDto)
    deleted = privacy.request_deletion(tenant(), actor(), dto.confirm)
    scheduled = deleted.deletion_scheduled_for
    return send(DeletionResponse(tenant=deleted.slug, scheduledFor=scheduled.isoformat() if scheduled else ""), 202)
