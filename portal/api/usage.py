"""/waha/usage: the tenant's plan usage."""

from __future__ import annotations

from flask import Response

from portal.api import bp
from portal.api.auth import api_route
from portal.api.common import send, tenant
from portal.api.openapi_usage import UsageResponse
from portal.services import quotas


@bp.get("/usage")
@api_route("sessions:read")
def usage() -> Response:
    return send(UsageResponse.of(quotas.as_dict(quotas.tenant_usage(tenant()))))
