"""The opt-out list over the API: /waha/opt-outs (list, add, import) and /waha/opt-outs/<phone> (remove); the
same service (services.optouts) and rules as the portal's page."""

from __future__ import annotations

from flask import Response

from portal.api import bp
from portal.api.auth import api_route
from portal.api.common import actor, dto_field_names, json_body, query, send, tenant
from portal.api.schemas.optouts import (
    AddOptOutDto,
    ImportOptOutsDto,
    OptOutImportResponse,
    OptOutImportRowError,
    OptOutListQuery,
    OptOutPage,
    OptOutResponse,
)
from portal.services import optouts
from portal.services.errors import Invalid

PHONE_MAX = 160
ERRORS_SHOWN = 1000


@bp.get("/opt-outs")
@api_route("messages:read")
def list_opt_outs() -> Response:
    filters = query(OptOutListQuery)
    page = optouts.page_opt_outs(tenant(), phone=filters.phone, q=filters.q, cursor=filters.cursor, limit=filters.limit)
    return send(OptOutPage(data=[OptOutResponse.of(row) for row in page.items], nextCursor=page.next_cursor))


@bp.post("/opt-outs")
@api_route("messages:send")
def add_opt_out() -> Response:
    dto = json_body(AddOptOutDto)
    with dto_field_names({"phone": "phone"}):
        row, added = optouts.add_one(tenant(), actor(), dto.phone, note=dto.note)
    return send(OptOutResponse.of(row, added), 201)


@bp.post("/opt-outs/import")
@api_route("messages:send")
def import_opt_outs() -> Response:
    dto = json_body(ImportOptOutsDto)
    with dto_field_names({"file": "csv"}):
        result = optouts.import_csv(tenant(), actor(), dto.csv.encode("utf-8"))
    errors = [OptOutImportRowError(line=line, reason=reason) for line, reason in result.errors[:ERRORS_SHOWN]]
    answer = OptOutImportResponse(
        added=result.added,
        already=result.already,
        repeated=result.repeated,
        errors=errors,
        errorCount=len(result.errors),
    )
    return send(answer)


@bp.delete("/opt-outs/<phone>")
@api_route("settings:manage")
def remove_opt_out(phone: str) -> Response:
    if len(phone) > PHONE_MAX or "\x00" in phone:
        raise Invalid.field("phone", "Not a phone number: use international format with country code.")
    optouts.remove(tenant(), actor(), phone)
    return Response(status=204)
