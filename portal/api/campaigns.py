"""Campaigns over the API: /waha/campaigns (create, list, get, pause, resume, cancel, recipients export)."""

from __future__ import annotations

from typing import Any

from flask import Response, stream_with_context

from portal.api import bp
from portal.api.auth import api_route
from portal.api.common import actor, dto_field_names, json_body, send, tenant
from portal.api.schemas.campaigns import CampaignList, CampaignResponse, CreateCampaignDto
from portal.services import campaigns


def _answer(campaign: Any) -> CampaignResponse:
    return CampaignResponse.of(campaign, campaigns.counts(campaign).as_dict())


@bp.post("/campaigns")
@api_route("messages:send")
def create_campaign() -> Response:
    dto = json_body(CreateCampaignDto)
    with dto_field_names({"name": "name"}):
        campaign = campaigns.create_campaign(
            tenant(),
            actor(),
            name=dto.name,
            session_ids=dto.sessionIds,
            template=dto.template,
            csv_content=dto.csv.encode("utf-8") if dto.csv is not None else None,
            tag=dto.tag,
            media=dto.media.for_service() if dto.media else None,
            start_at=dto.start_at(),
            quiet_start=dto.quietStart,
            quiet_end=dto.quietEnd,
            daily_cap=dto.dailyCap,
        )
    return send(_answer(campaigns.get_campaign(tenant(), campaign.id)), 202)


@bp.get("/campaigns")
@api_route("messages:read")
def list_campaigns() -> Response:
    return send(CampaignList(data=[_answer(c) for c in campaigns.list_campaigns(tenant())]))


@bp.get("/campaigns/<campaign_id>")
@api_route("messages:read")
def get_campaign(campaign_id: str) -> Response:
    return send(_answer(campaigns.get_campaign(tenant(), campaign_id)))


@bp.post("/campaigns/<campaign_id>/pause")
@api_route("messages:send")
def pause_campaign(campaign_id: str) -> Response:
    return send(_answer(campaigns.pause_campaign(tenant(), actor(), campaign_id)))


@bp.post("/campaigns/<campaign_id>/resume")
@api_route("messages:send")
def resume_campaign(campaign_id: str) -> Response:
    return send(_answer(campaigns.resume_campaign(tenant(), actor(), campaign_id)))


@bp.post("/campaigns/<campaign_id>/cancel")
@api_route("messages:send")
def cancel_campaign(campaign_id: str) -> Response:
    return send(_answer(campaigns.cancel_campaign(tenant(), actor(), campaign_id)))


@bp.get("/campaigns/<campaign_id>/recipients")
@api_route("messages:read")
def export_recipients(campaign_id: str) -> Response:
    campaign = campaigns.get_campaign(tenant(), campaign_id)
    response = Response(stream_with_context(campaigns.export_rows(campaign)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="campaign-{campaign.id}-recipients.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
