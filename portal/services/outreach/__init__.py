"""Outreach: every message the portal sends later or paced goes through one queue per session.

- `queue`: enqueue / enqueue_many, cancel, pause / resume a session's queue, clear its campaign traffic, waking
  the dispatcher;
- `rules`: what other areas plug in: gates (`register_gate`, `Hold`, `Skip`) and listeners (`on_settled`);
- `dispatch`: the per-session dispatcher (lanes, quiet hours, the campaign gap, gates, pacing, the claim) and
  the sweep;
- `sending`: one claimed item sent through the send service under its idempotency key, typing first;
- `lateness`: scheduled messages held because their session was not WORKING;
- `settings`: the tenant's time zone, quiet hours and campaign gap;
- `scheduled`: scheduled messages (sendAt) listed, changed, cancelled;
- `overview`: a session's queue as the queue page shows it (position, ETA, hold reasons).
"""

from portal.services.outreach.dispatch import Report, plan, run, sweep
from portal.services.outreach.queue import (
    cancel,
    clear_campaign_traffic,
    enqueue,
    enqueue_many,
    get_item,
    pause_session,
    resume_session,
    wake,
)
from portal.services.outreach.rules import Hold, Skip, on_settled, register_gate
from portal.services.outreach.scheduled import (
    MAX_AHEAD,
    ScheduledPage,
    cancel_scheduled,
    check_send_at,
    get_scheduled,
    list_scheduled,
    schedule_message,
    update_scheduled,
)
from portal.services.outreach.settings import Outreach, outreach_settings, tenant_time, update_outreach_settings

__all__ = [
    "MAX_AHEAD",
    "Hold",
    "ScheduledPage",
    "cancel_scheduled",
    "check_send_at",
    "get_scheduled",
    "list_scheduled",
    "schedule_message",
    "update_scheduled",
    "Outreach",
    "Report",
    "Skip",
    "cancel",
    "clear_campaign_traffic",
    "enqueue",
    "enqueue_many",
    "get_item",
    "on_settled",
    "outreach_settings",
    "pause_session",
    "plan",
    "register_gate",
    "resume_session",
    "run",
    "sweep",
    "tenant_time",
    "update_outreach_settings",
    "wake",
]
