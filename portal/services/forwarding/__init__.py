"""Forwarding events to tenants: their webhook endpoints, the per-session webhook URL, and the delivery ledger.

Every delivery attempt is a `WebhookDelivery` row. Rows are planned in the same transaction that applies the
event, so nothing is lost between processing and sending; a drain job claims due rows in batches and sends them
on a bounded pool of threads that keep their connections (Standard Webhooks signature, timeout
WAHA_WEBHOOK_TIMEOUT). A failure adds the next attempt (same msg_id) due after an exponential back-off with
jitter; after WAHA_WEBHOOK_RETRY_ATTEMPTS retries the last row is marked "dead". `dispatch_due` (scheduled) asks
for a drain whenever attempts are due. Destinations pass the destination policy (portal.services.destinations) at
create time and again at every attempt, where the connection goes to an address that was checked
(portal.net.http: no redirects, bounded time and response excerpt).

- `endpoints`: the tenant's endpoints (checks, create, change, rotate, delete);
- `signing`: signing secrets and the Standard Webhooks headers;
- `planning`: first attempts for the subscribed destinations of an event, and the envelope;
- `deliveries`: the ledger (list, read, replay, test event) and asking for a drain (queue_deliveries, dispatch_due);
- `drain`: claiming due attempts in batches, the sending threads, leases and wake-ups (drain, deliver);
- `sending`: one attempt sent (post) and a batch of outcomes recorded (back-off, dead-lettering).
"""

from portal.services.forwarding.deliveries import (
    DELIVERY_STATUSES,
    DeliveryPage,
    DeliveryStatus,
    dispatch_due,
    filtered_deliveries,
    get_delivery,
    list_deliveries,
    queue_deliveries,
    replay_delivery,
    send_test_event,
)
from portal.services.forwarding.drain import LEASE_SECONDS, DrainResult, deliver, drain, request_drain
from portal.services.forwarding.endpoints import (
    COMMON_EVENTS,
    DESCRIPTION_MAX,
    ENDPOINT_EVENTS,
    PORTAL_EVENTS,
    URL_MAX,
    create_endpoint,
    delete_endpoint,
    destination_problem,
    endpoint_event_choices,
    get_endpoint,
    list_endpoints,
    rotate_secret,
    update_endpoint,
)
from portal.services.forwarding.planning import event_body, plan_deliveries, plan_portal_event, subscribed
from portal.services.forwarding.sending import (
    EXCERPT_MAX,
    RETRY_BASE_SECONDS,
    RETRY_MAX_SECONDS,
    USER_AGENT,
    backoff_seconds,
)
from portal.services.forwarding.signing import SECRET_PREFIX, new_secret, session_webhook_secret, sign

__all__ = [
    "COMMON_EVENTS",
    "DELIVERY_STATUSES",
    "DESCRIPTION_MAX",
    "ENDPOINT_EVENTS",
    "EXCERPT_MAX",
    "LEASE_SECONDS",
    "PORTAL_EVENTS",
    "RETRY_BASE_SECONDS",
    "RETRY_MAX_SECONDS",
    "SECRET_PREFIX",
    "URL_MAX",
    "USER_AGENT",
    "DeliveryPage",
    "DeliveryStatus",
    "DrainResult",
    "backoff_seconds",
    "create_endpoint",
    "delete_endpoint",
    "deliver",
    "destination_problem",
    "dispatch_due",
    "drain",
    "endpoint_event_choices",
    "event_body",
    "filtered_deliveries",
    "get_delivery",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "new_secret",
    "plan_deliveries",
    "plan_portal_event",
    "queue_deliveries",
    "replay_delivery",
    "request_drain",
    "rotate_secret",
    "send_test_event",
    "session_webhook_secret",
    "sign",
    "subscribed",
    "update_endpoint",
]
