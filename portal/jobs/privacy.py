"""Jobs of data protection: building a whole-tenant export, and the upkeep (expired exports, tenants whose
deletion's grace period is over)."""

from __future__ import annotations

import logging

from portal.jobs import job
from portal.models import utcnow
from portal.services import privacy

log = logging.getLogger(__name__)


@job
def export_tenant(export_id: int) -> str:
    """Build one whole-tenant export (services.privacy.build_export)."""
    return privacy.build_export(export_id)


@job
def upkeep() -> dict:
    """Delete expired exports' files and the tenants whose deletion is due."""
    now = utcnow()
    expired = privacy.expire_exports(now)
    deleted = privacy.purge_due(now)
    if expired or deleted:
        log.info("privacy upkeep: %d exports expired, tenants deleted: %s", expired, deleted)
    return {"exports_expired": expired, "tenants_deleted": deleted}
