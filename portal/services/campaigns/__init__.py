"""Campaigns: one message template sent to an audience (a CSV or tagged contacts) through the send queue."""

from portal.services.campaigns.dispatch import advance, campaign_gate, due_campaigns, register, settled
from portal.services.campaigns.lifecycle import (
    cancel_campaign,
    create_campaign,
    get_campaign,
    import_audience,
    list_campaigns,
    pause_campaign,
    resume_campaign,
)
from portal.services.campaigns.progress import chart, counts, error_report, export_rows
from portal.services.campaigns.templates import render, variables_of

__all__ = [
    "advance",
    "campaign_gate",
    "cancel_campaign",
    "chart",
    "counts",
    "create_campaign",
    "due_campaigns",
    "error_report",
    "export_rows",
    "get_campaign",
    "import_audience",
    "list_campaigns",
    "pause_campaign",
    "register",
    "render",
    "resume_campaign",
    "settled",
    "variables_of",
]
