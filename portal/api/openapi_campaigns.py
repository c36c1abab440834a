"""The campaigns' part of the /waha route table, its error codes and DTOs; `portal.api.openapi` puts them into
the document."""

from __future__ import annotations

from portal.api.route_table import AUTH, ApiRoute, ErrorCode
from portal.api.schemas import campaigns as c

_C = "/waha/campaigns/{campaign_id}"

CAMPAIGN_ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(404, "campaign_not_found", "No such campaign in your tenant."),
    ErrorCode(
        400,
        "unknown_variable",
        "The template uses a {{variable}} the audience does not have (details.unknown names them); nothing was "
        "stored or queued.",
    ),
    ErrorCode(409, "campaign_not_ready", "The campaign is not in a state that allows this (details.state)."),
    ErrorCode(
        409,
        "recipient_opted_out",
        "The recipient is on your opt-out list; nothing was sent. An owner or admin may pass ignoreOptOut.",
    ),
    ErrorCode(
        403,
        "opt_out_override_forbidden",
        "ignoreOptOut was given by a caller whose role is not owner or admin (for a token: its creator's role).",
    ),
)

_STATES = (
    "importing (the audience is being read: see progress), scheduled (waiting for startAt or a WORKING session: "
    "see error), checking (numbers are checked with WhatsApp at a paced rate), running, paused, completed, "
    "cancelled, failed (the audience could not be read: see error)."
)

CAMPAIGN_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "POST",
        "/waha/campaigns",
        "api.create_campaign",
        "Create a campaign",
        "Campaigns",
        "messages:send",
        ok=202,
        response=c.CampaignResponse,
        body=c.CreateCampaignDto,
        errors=(400, *AUTH, 404, 409, 413),
        description="Checks the sessions, the template against the audience's columns, the attachment and the "
        "schedule, stores the campaign and imports its audience in the background (state importing, then "
        "scheduled). 409 quota_exceeded when the audience is larger than the month's remaining campaign "
        "recipients of the plan. Numbers are checked with WhatsApp before sending; numbers not on WhatsApp are "
        "skipped, "
        "opted-out numbers are never sent to. States: " + _STATES,
        example={
            "name": "Spring sale",
            "sessionIds": ["6f1c2d3e-0000-4000-8000-000000000001"],
            "template": "Hi {{name}}, our sale starts today.",
            "csv": "phone,name\n+49 170 1234567,Ana\n",
        },
    ),
    ApiRoute(
        "GET",
        "/waha/campaigns",
        "api.list_campaigns",
        "List campaigns",
        "Campaigns",
        "messages:read",
        response=c.CampaignList,
        errors=AUTH,
        description="The tenant's latest 100 campaigns, newest first, with their counts.",
    ),
    ApiRoute(
        "GET",
        _C,
        "api.get_campaign",
        "Get a campaign",
        "Campaigns",
        "messages:read",
        response=c.CampaignResponse,
        errors=(*AUTH, 404),
        description="The campaign and its live counts (queued, sent, delivered, read, replied, failed, skipped, "
        "optedOut).",
    ),
    ApiRoute(
        "POST",
        f"{_C}/pause",
        "api.pause_campaign",
        "Pause a campaign",
        "Campaigns",
        "messages:send",
        response=c.CampaignResponse,
        errors=(*AUTH, 404, 409),
        description="Queued messages wait until the campaign is resumed. Audited.",
    ),
    ApiRoute(
        "POST",
        f"{_C}/resume",
        "api.resume_campaign",
        "Resume a campaign",
        "Campaigns",
        "messages:send",
        response=c.CampaignResponse,
        errors=(*AUTH, 404, 409),
        description="Goes on where the campaign stopped. Audited.",
    ),
    ApiRoute(
        "POST",
        f"{_C}/cancel",
        "api.cancel_campaign",
        "Cancel a campaign",
        "Campaigns",
        "messages:send",
        response=c.CampaignResponse,
        errors=(*AUTH, 404, 409),
        description="What is not sent yet never will be (reported as skipped, reason cancelled). Audited.",
    ),
    ApiRoute(
        "GET",
        f"{_C}/recipients",
        "api.export_recipients",
        "Export a campaign's recipients (CSV)",
        "Campaigns",
        "messages:read",
        binary=True,
        errors=(*AUTH, 404),
        description="One CSV line per audience row, streamed: line, phone, session_id, state, reason, "
        "message_status, sent_at, replied; refused rows follow with state rejected or opted_out.",
    ),
)

CAMPAIGN_MODELS = (c.CreateCampaignDto, c.CampaignResponse, c.CampaignCounts, c.CampaignList)
