"""Jobs of campaigns and opt-outs: import a campaign's audience, move campaigns on, confirm an opt-out."""

from __future__ import annotations

import logging

from portal.jobs import job
from portal.services import campaigns, optouts

log = logging.getLogger(__name__)


@job
def import_audience(campaign_id: int) -> None:
    """Read and validate the campaign's audience (services.campaigns.import_audience), then start it."""
    campaigns.import_audience(campaign_id)
    campaigns.advance(campaign_id)


@job
def start_campaign(campaign_id: int) -> None:
    """Move one campaign on (check numbers, queue them, finish it)."""
    state = campaigns.advance(campaign_id)
    log.info("campaign %s: %s", campaign_id, state)


@job
def advance_campaigns() -> int:
    """Move every active campaign on; run on a schedule."""
    ids = campaigns.due_campaigns()
    for campaign_id in ids:
        campaigns.advance(campaign_id, budget=10.0)
    return len(ids)


@job
def confirm_opt_out(opt_out_id: int, session_id: str, text: str) -> None:
    """Send the tenant's confirmation reply to a number that just opted out."""
    optouts.send_confirmation(opt_out_id, session_id, text)
