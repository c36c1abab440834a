"""A scheduled message whose time came while its session was not WORKING: held, marked late, the tenant told.

The notice is the queue page's and the scheduled list's "late" mark, an audit event ("outreach.late") and a
"message.scheduled_late" event to the tenant's webhook endpoints that subscribe to it (planned in the same
transaction, queued after the commit). The message is sent once the session is WORKING again.
"""

from __future__ import annotations

from portal.models import QueuedSend, WahaSession, WebhookDelivery
from portal.services import audit, forwarding
from portal.services.audit import SYSTEM

LATE_EVENT = "message.scheduled_late"


def mark_late(session: WahaSession, item: QueuedSend, reason: str) -> list[WebhookDelivery]:
    """Mark the item late and plan the tenant's notice in the caller's transaction; returns the deliveries to
    queue after the commit."""
    item.late = True
    data = {
        "id": item.id,
        "chatId": item.chat_id,
        "sendAt": item.not_before.isoformat() if item.not_before else None,
        "reason": reason,
        "sessionStatus": session.status,
    }
    audit.record(
        item.tenant_id,
        "outreach.late",
        SYSTEM,
        target_type="queued_send",
        target_id=item.id,
        details={"session_id": session.id, "status": session.status},
    )
    return forwarding.plan_portal_event(item.tenant_id, LATE_EVENT, data, session)


def after_commit(deliveries: list[WebhookDelivery]) -> None:
    if deliveries:
        forwarding.queue_deliveries([d.id for d in deliveries])
