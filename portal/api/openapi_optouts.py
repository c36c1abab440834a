"""The opt-out list's part of the /waha route table, its error codes and DTOs; `portal.api.openapi` puts them
into the document."""

from __future__ import annotations

from portal.api.route_table import AUTH, ApiRoute, ErrorCode
from portal.api.schemas import optouts as o

OPT_OUT_ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(404, "opt_out_not_found", "That number is not on your tenant's opt-out list."),
)

OPT_OUT_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET",
        "/waha/opt-outs",
        "api.list_opt_outs",
        "List the opt-out list",
        "Opt-outs",
        "messages:read",
        response=o.OptOutPage,
        query=o.OptOutListQuery,
        errors=(400, *AUTH),
        description="Numbers that never get campaign or scheduled messages (and whose one-off sends answer 409 "
        "recipient_opted_out), newest first, in pages; pass nextCursor as ?cursor= for the next one. phone narrows "
        "to one number, q to numbers containing its digits.",
    ),
    ApiRoute(
        "POST",
        "/waha/opt-outs",
        "api.add_opt_out",
        "Put a number on the opt-out list",
        "Opt-outs",
        "messages:send",
        ok=201,
        response=o.OptOutResponse,
        body=o.AddOptOutDto,
        errors=(400, *AUTH),
        description="Idempotent: a number already listed answers 201 with its entry as it was (added false) and "
        "changes nothing. Audited as opt_out.add.",
        example={"phone": "+491701234567", "note": "asked by phone"},
    ),
    ApiRoute(
        "POST",
        "/waha/opt-outs/import",
        "api.import_opt_outs",
        "Import numbers into the opt-out list (CSV)",
        "Opt-outs",
        "messages:send",
        response=o.OptOutImportResponse,
        body=o.ImportOptOutsDto,
        errors=(400, *AUTH, 413),
        description="The CSV as text in `csv` (at most 5 MB): a `phone` column, or the numbers in the first "
        "column when the first line is no header. Valid numbers are added in one "
        "transaction (listed ones are counted as already); rows that are not numbers are reported by line. "
        "Audited as opt_out.import.",
        example={"csv": "phone\n+491701234567\n+491701234568\n"},
    ),
    ApiRoute(
        "DELETE",
        "/waha/opt-outs/{phone}",
        "api.remove_opt_out",
        "Take a number off the opt-out list",
        "Opt-outs",
        "settings:manage",
        ok=204,
        errors=(400, *AUTH, 404),
        description="The number as +491701234567, 491701234567 or 491701234567@c.us. Needs settings:manage (as "
        "on the portal's page: owners and admins). Answers 204 with no body; 404 opt_out_not_found when it is not "
        "listed. Audited as opt_out.remove.",
    ),
)

OPT_OUT_MODELS = (
    o.OptOutResponse,
    o.OptOutPage,
    o.AddOptOutDto,
    o.OptOutImportResponse,
    o.OptOutImportRowError,
    o.ImportOptOutsDto,
)
