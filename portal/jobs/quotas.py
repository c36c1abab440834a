"""Jobs of the quotas: Redis's usage counts written to PostgreSQL (with the warnings), media recounted."""

from __future__ import annotations

from portal.jobs import job
from portal.services.quotas import reconcile


@job
def reconcile_usage() -> int:
    """Write the tenant days Redis counted to `quota_usage` and warn owners at 80 % and 100 %."""
    return reconcile.flush()


@job
def recount_media() -> int:
    """Count every tenant's stored media again at its next use."""
    return reconcile.recount_media()
