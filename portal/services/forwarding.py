"""Forwarding events to tenants: their webhook endpoints, the per-session webhook URL, and the delivery ledger.

Every delivery attempt is a `WebhookDelivery` row. Rows are planned in the same transaction that applies the
event, so nothing is lost between processing and sending; a job sends one row (Standard Webhooks signature,
timeout WAHA_WEBHOOK_TIMEOUT). A failure adds the next attempt (same msg_id) due after an exponential back-off
with jitter; after WAHA_WEBHOOK_RETRY_ATTEMPTS retries the last row is marked "dead". `dispatch_due` (scheduled)
queues attempts whose time has come, and first attempts whose job was lost. Destinations pass the destination
policy (portal.services.destinations) at create time and again at every send, where the connection goes to the
address that was checked (portal.net.http: no redirects, bounded time and response excerpt).
"""

from __future__ import annotations

import base64
import json
import logging
import random
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

import requests
from flask import current_app
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from portal.extensions import db
from portal.models import Tenant, WahaSession, WebhookDelivery, WebhookEndpoint, WebhookEvent, get_for_tenant, utcnow
from portal.net import http as outbound
from portal.net import policy
from portal.services import audit, destinations, session_secrets
from portal.services.audit import Actor
from portal.services.errors import Invalid, NotFound

log = logging.getLogger(__name__)

DELIVER_JOB = "portal.jobs.forwarding.deliver"
SECRET_PREFIX = "whsec_"
URL_MAX = 2048
DESCRIPTION_MAX = 200
RETRY_BASE_SECONDS = 5.0  # first retry after ~5 s, then 10, 20, 40 ... (plus up to 20 % jitter)
RETRY_MAX_SECONDS = 6 * 3600
LEASE_SECONDS = 120  # a queued attempt whose job never ran is queued again after this long
EXCERPT_MAX = 500
USER_AGENT = "WAHA-Portal-Webhooks/1"
PORTAL_EVENTS = frozenset({"session.attention", "test"})


def _waha_events() -> frozenset[str]:
    from portal.services.sessions import WAHA_EVENTS

    return WAHA_EVENTS


# ============================================================================================== destinations


def destination_problem(url: str) -> str | None:
    """Why `url` may not receive webhooks (None when it may): see portal.services.destinations."""
    return destinations.problem(url)


def _clean_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise Invalid.field("url", "Give the URL that should receive the events.")
    if len(url.strip()) > URL_MAX:
        raise Invalid.field("url", f"The URL must be at most {URL_MAX} characters.")
    return destinations.clean_url(url, "url")


def _clean_events(events: Any) -> list[str]:
    if events is None:
        return ["*"]
    if isinstance(events, str):
        events = [e.strip() for e in events.split(",") if e.strip()]
    if not isinstance(events, (list, tuple)) or not all(isinstance(e, str) for e in events):
        raise Invalid.field("events", "Events must be a list of event names.")
    known = _waha_events() | PORTAL_EVENTS | {"*"}
    unknown = sorted(set(events) - known)
    if unknown:
        raise Invalid.field("events", f"Unknown event name(s): {', '.join(unknown)}.")
    return list(dict.fromkeys(events)) or ["*"]


def _clean_description(description: Any) -> str:
    if description is None:
        return ""
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
        raise Invalid.field("description", f"The description must be text of at most {DESCRIPTION_MAX} characters.")
    return description.strip()


def new_secret() -> str:
    """A fresh Standard Webhooks signing secret ("whsec_" + base64 of 24 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def session_webhook_secret(session: WahaSession) -> str:
    """The secret that signs deliveries to a session's own webhook URL: the stored one (shown to the tenant once,
    rotatable), or for sessions made before it was stored the value derived from WAHA_WEBHOOK_SECRET."""
    return session_secrets.secret_for(session)


# ============================================================================================== endpoints


def create_endpoint(tenant: Tenant, actor: Actor, *, url: Any, events: Any = None,
                    description: Any = "") -> tuple[WebhookEndpoint, str]:
    """Add an endpoint; returns it with its signing secret, which is shown this once (stored encrypted)."""
    clean = {"url": _clean_url(url), "events": _clean_events(events), "description": _clean_description(description)}
    secret = new_secret()
    endpoint = WebhookEndpoint(tenant_id=tenant.id, secret=secret, is_enabled=True, **clean)
    db.session.add(endpoint)
    db.session.flush()
    audit.record(tenant.id, "webhook.create", actor, target_type="webhook_endpoint", target_id=endpoint.id,
                 details={"url": clean["url"], "events": clean["events"]})
    db.session.commit()
    return endpoint, secret


def list_endpoints(tenant: Tenant) -> list[WebhookEndpoint]:
    """The tenant's endpoints, oldest first."""
    return list(db.session.scalars(WebhookEndpoint.scoped(tenant.id).order_by(WebhookEndpoint.id)))


def get_endpoint(tenant: Tenant, endpoint_id: Any) -> WebhookEndpoint:
    """One of the tenant's endpoints; NotFound "endpoint_not_found" otherwise (also for another tenant's)."""
    endpoint = get_for_tenant(db.session, WebhookEndpoint, tenant.id, endpoint_id)
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", code="endpoint_not_found")
    return endpoint


def update_endpoint(tenant: Tenant, endpoint_id: Any, actor: Actor, **fields: Any) -> WebhookEndpoint:
    """Change url, events, description or is_enabled (only the fields given)."""
    endpoint = get_endpoint(tenant, endpoint_id)
    unknown = set(fields) - {"url", "events", "description", "is_enabled"}
    if unknown:
        raise Invalid(f"Unknown field(s): {', '.join(sorted(unknown))}.",
                      details={"fields": [{"field": f, "message": "Unknown field."} for f in sorted(unknown)]})
    changes: dict[str, Any] = {}
    if "url" in fields:
        changes["url"] = _clean_url(fields["url"])
    if "events" in fields:
        changes["events"] = _clean_events(fields["events"])
    if "description" in fields:
        changes["description"] = _clean_description(fields["description"])
    if "is_enabled" in fields:
        if not isinstance(fields["is_enabled"], bool):
            raise Invalid.field("is_enabled", "is_enabled must be true or false.")
        changes["is_enabled"] = fields["is_enabled"]
    for key, value in changes.items():
        setattr(endpoint, key, value)
    audit.record(tenant.id, "webhook.update", actor, target_type="webhook_endpoint", target_id=endpoint.id,
                 details={k: v for k, v in changes.items()})
    db.session.commit()
    return endpoint


def rotate_secret(tenant: Tenant, endpoint_id: Any, actor: Actor) -> tuple[WebhookEndpoint, str]:
    """Give the endpoint a new signing secret (shown once); the old one stops working at once."""
    endpoint = get_endpoint(tenant, endpoint_id)
    secret = new_secret()
    endpoint.secret = secret
    audit.record(tenant.id, "webhook.rotate_secret", actor, target_type="webhook_endpoint", target_id=endpoint.id)
    db.session.commit()
    return endpoint, secret


def delete_endpoint(tenant: Tenant, endpoint_id: Any, actor: Actor) -> None:
    """Remove the endpoint and its delivery history."""
    endpoint = get_endpoint(tenant, endpoint_id)
    audit.record(tenant.id, "webhook.delete", actor, target_type="webhook_endpoint", target_id=endpoint.id,
                 details={"url": endpoint.url})
    db.session.delete(endpoint)
    db.session.commit()


# ============================================================================================== deliveries


@dataclass
class DeliveryPage:
    """One page of deliveries, newest first; pass `next_cursor` back for the next page (None on the last)."""

    items: list[WebhookDelivery]
    next_cursor: str | None


def _encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"d{row_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("d"):
            raise ValueError
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError):
        raise Invalid.field("cursor", "The cursor is not valid; start again from the first page.") from None


DELIVERY_STATUSES = ("pending", "succeeded", "failed", "dead")


def list_deliveries(tenant: Tenant, *, endpoint_id: Any = None, status: str | None = None,
                    cursor: str | None = None, limit: int = 50) -> DeliveryPage:
    """The tenant's delivery attempts, newest first, optionally of one endpoint and one status."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise Invalid.field("status", f"Status must be one of {', '.join(DELIVERY_STATUSES)}.")
    limit = max(1, min(int(limit), 200))
    stmt = WebhookDelivery.scoped(tenant.id)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == get_endpoint(tenant, endpoint_id).id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    if cursor:
        stmt = stmt.where(WebhookDelivery.id < _decode_cursor(cursor))
    rows = list(db.session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit + 1)))
    next_cursor = _encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return DeliveryPage(items=rows[:limit], next_cursor=next_cursor)


def get_delivery(tenant: Tenant, delivery_id: Any) -> WebhookDelivery:
    """One of the tenant's delivery attempts; NotFound "delivery_not_found" otherwise."""
    delivery = get_for_tenant(db.session, WebhookDelivery, tenant.id, delivery_id)
    if delivery is None:
        raise NotFound("No such delivery.", code="delivery_not_found")
    return delivery


def _lease_until(now: datetime | None = None) -> datetime:
    timeout = current_app.config["WAHA_WEBHOOK_TIMEOUT"] / 1000
    return (now or utcnow()) + timedelta(seconds=LEASE_SECONDS + timeout)


def replay_delivery(tenant: Tenant, delivery_id: Any, actor: Actor) -> WebhookDelivery:
    """Send a delivery again as a new attempt (same msg_id, to the endpoint's current URL)."""
    original = get_delivery(tenant, delivery_id)
    url = original.url
    if original.endpoint_id is not None:
        endpoint = get_endpoint(tenant, original.endpoint_id)
        url = endpoint.url
    last = db.session.scalar(select(func.max(WebhookDelivery.attempt)).where(
        WebhookDelivery.tenant_id == tenant.id, WebhookDelivery.msg_id == original.msg_id,
        WebhookDelivery.endpoint_id.is_(None) if original.endpoint_id is None
        else WebhookDelivery.endpoint_id == original.endpoint_id)) or original.attempt
    replay = WebhookDelivery(
        tenant_id=tenant.id, endpoint_id=original.endpoint_id, session_id=original.session_id, url=url,
        msg_id=original.msg_id, event_type=original.event_type, webhook_event_id=original.webhook_event_id,
        payload=original.payload, attempt=last + 1, status="pending", due_at=_lease_until(),
    )
    db.session.add(replay)
    db.session.flush()
    audit.record(tenant.id, "webhook.replay", actor, target_type="webhook_delivery", target_id=replay.id,
                 details={"replayed": original.id, "msg_id": original.msg_id})
    db.session.commit()
    queue_deliveries([replay.id])
    return replay


def send_test_event(tenant: Tenant, endpoint_id: Any, actor: Actor) -> WebhookDelivery:
    """Queue a "test" event to one endpoint, to check its URL and signature verification."""
    endpoint = get_endpoint(tenant, endpoint_id)
    msg_id = "msg_test_" + secrets.token_hex(8)
    # the same envelope as every other event, so a handler written against the test works on real events
    body = {"id": msg_id, "type": "test", "timestamp": int(time.time() * 1000), "session": None,
            "payload": {"message": "This is a test event from WAHA Portal."}}
    delivery = WebhookDelivery(tenant_id=tenant.id, endpoint_id=endpoint.id, url=endpoint.url, msg_id=msg_id,
                               event_type="test", payload=body, attempt=1, status="pending", due_at=_lease_until())
    db.session.add(delivery)
    db.session.flush()
    audit.record(tenant.id, "webhook.test", actor, target_type="webhook_endpoint", target_id=endpoint.id)
    db.session.commit()
    queue_deliveries([delivery.id])
    return delivery


# ---------------------------------------------------------------------------------------------- planning


def subscribed(events: Iterable[str] | None, event: str) -> bool:
    """Whether a subscription list takes `event` ("*" or an empty list take everything)."""
    events = list(events or [])
    return not events or "*" in events or event in events


def _strip_media_url(payload: Any) -> Any:
    # WAHA's media URLs need WAHA's API key and expire; tenants fetch files through the portal instead.
    if isinstance(payload, dict) and ("media" in payload or "mediaUrl" in payload):
        payload = dict(payload)
        payload.pop("mediaUrl", None)
        if isinstance(payload.get("media"), dict):
            payload["media"] = {k: v for k, v in payload["media"].items() if k != "url"}
    return payload


def event_body(event: WebhookEvent, session: WahaSession) -> dict[str, Any]:
    """What a tenant receives for a WAHA event: the portal's session, the event name, time and payload."""
    envelope = event.payload or {}
    stamp = envelope.get("timestamp")
    return {
        "id": event.event_id,
        "type": event.event,
        "timestamp": stamp if isinstance(stamp, (int, float)) else int(event.received_at.timestamp() * 1000),
        "session": {"id": session.id, "name": session.name},
        "me": envelope.get("me"),
        "payload": _strip_media_url(envelope.get("payload")),
        "engine": envelope.get("engine"),
    }


def _endpoints_for(tenant_ids: set[int]) -> dict[int, list[WebhookEndpoint]]:
    grouped: dict[int, list[WebhookEndpoint]] = {}
    if not tenant_ids:
        return grouped
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id.in_(tenant_ids),
                                         WebhookEndpoint.is_enabled.is_(True)).order_by(WebhookEndpoint.id)
    for endpoint in db.session.scalars(stmt):
        grouped.setdefault(endpoint.tenant_id, []).append(endpoint)
    return grouped


def plan_deliveries(items: list[tuple[WebhookEvent, WahaSession]]) -> list[WebhookDelivery]:
    """First attempts for every destination subscribed to these processed events (caller's transaction)."""
    if not items:
        return []
    endpoints = _endpoints_for({session.tenant_id for _, session in items})
    has_session_urls = any(session.webhook_url for _, session in items)
    if not endpoints and not has_session_urls:
        return []
    due = _lease_until()
    rows: list[WebhookDelivery] = []
    for event, session in items:
        targets = [(e.id, e.url) for e in endpoints.get(session.tenant_id, []) if subscribed(e.events, event.event)]
        if session.webhook_url and event.event not in PORTAL_EVENTS and \
                subscribed(session.webhook_events or ["*"], event.event):
            targets.append((None, session.webhook_url))
        if not targets:
            continue
        body = event_body(event, session)
        for endpoint_id, url in targets:
            rows.append(WebhookDelivery(
                tenant_id=session.tenant_id, endpoint_id=endpoint_id, session_id=session.id, url=url,
                msg_id=event.event_id, event_type=event.event, webhook_event_id=event.id, payload=body, attempt=1,
                status="pending", due_at=due))
    db.session.add_all(rows)
    return rows


def plan_portal_event(tenant_id: int, event_type: str, data: dict[str, Any],
                      session: WahaSession | None = None) -> list[WebhookDelivery]:
    """First attempts of an event the portal itself raises (e.g. "session.attention") to subscribed endpoints."""
    endpoints = [e for e in _endpoints_for({tenant_id}).get(tenant_id, []) if subscribed(e.events, event_type)]
    if not endpoints:
        return []
    msg_id = "msg_" + secrets.token_hex(12)
    body = {"id": msg_id, "type": event_type, "timestamp": int(time.time() * 1000),
            "session": {"id": session.id, "name": session.name} if session is not None else None, "payload": data}
    due = _lease_until()
    rows = [WebhookDelivery(tenant_id=tenant_id, endpoint_id=e.id, session_id=session.id if session else None,
                            url=e.url, msg_id=msg_id, event_type=event_type, payload=body, attempt=1,
                            status="pending", due_at=due) for e in endpoints]
    db.session.add_all(rows)
    return rows


def queue_deliveries(delivery_ids: list[int]) -> int:
    """Queue a send job per delivery (one Redis round trip). Never raises: `dispatch_due` re-queues later."""
    from portal.jobs import QUEUE_FORWARDING, enqueue_many

    if not delivery_ids:
        return 0
    try:
        return enqueue_many([(DELIVER_JOB, (i,)) for i in delivery_ids], queue=QUEUE_FORWARDING)
    except Exception:
        log.warning("could not queue %d deliveries; they go out with the next dispatch", len(delivery_ids),
                    exc_info=True)
        return 0


# ---------------------------------------------------------------------------------------------- sending


def backoff_seconds(attempt: int) -> float:
    """Delay before the attempt after `attempt`: base x 2^(attempt-1), plus 0-20 % jitter, capped."""
    base = float(current_app.config.get("WEBHOOK_RETRY_BASE_SECONDS", RETRY_BASE_SECONDS))
    delay = min(RETRY_MAX_SECONDS, base * 2 ** max(0, attempt - 1))
    return delay * random.uniform(1.0, 1.2)


def _secret_for(delivery: WebhookDelivery) -> str | None:
    if delivery.endpoint_id is not None:
        endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
        return endpoint.secret if endpoint is not None and endpoint.is_enabled else None
    session = db.session.get(WahaSession, delivery.session_id) if delivery.session_id else None
    return session_webhook_secret(session) if session is not None else None


def sign(secret: str, msg_id: str, when: datetime, body: str) -> dict[str, str]:
    """Standard Webhooks headers for one message."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body),
    }


def _claim_delivery(delivery_id: int) -> WebhookDelivery | None:
    stmt = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending")
    if db.engine.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return db.session.scalars(stmt).first()


def deliver(delivery_id: int) -> str:
    """Send one pending attempt and record the outcome on its row; returns the new status ("skipped" when the row
    is not pending or another worker has it). A failure queues the next attempt or, after the last, dead-letters."""
    delivery = _claim_delivery(delivery_id)
    if delivery is None:
        db.session.rollback()
        return "skipped"
    secret = _secret_for(delivery)
    started = time.perf_counter()
    retryable = True
    if secret is None:
        delivery.error, retryable = "the destination was disabled or removed", False
    else:
        retryable = _send(delivery, secret)
    delivery.duration_ms = int((time.perf_counter() - started) * 1000)
    if delivery.status != "succeeded":
        _after_failure(delivery, retryable)
    db.session.commit()
    return delivery.status


def _send(delivery: WebhookDelivery, secret: str) -> bool:
    """Post the delivery through the pinned client (portal.net.http); returns whether a failure may be retried."""
    body = json.dumps(delivery.payload, separators=(",", ":"), default=str)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               **sign(secret, delivery.msg_id, utcnow(), body)}
    timeout = current_app.config["WAHA_WEBHOOK_TIMEOUT"] / 1000
    try:
        # The destination is checked again now and the connection goes to the address that passed the check;
        # redirects are not followed (one could point at an address the check refused).
        answer = outbound.request("POST", delivery.url, allow_private=destinations.allow_private(),
                                  timeout=timeout, max_bytes=EXCERPT_MAX, headers=headers, data=body.encode())
    except policy.Refused as refused:
        delivery.error = f"destination refused: URL {refused.reason}"
        return refused.kind == "unresolvable"
    except requests.Timeout:
        delivery.error = f"no answer within {timeout:g} s"
        return True
    except requests.RequestException as exc:
        delivery.error = f"could not connect: {type(exc).__name__}"
        return True
    delivery.response_status = answer.status
    delivery.response_excerpt = answer.text()[:EXCERPT_MAX] if answer.body else None
    if answer.ok:
        delivery.status, delivery.error = "succeeded", None
    else:
        delivery.error = f"answered HTTP {answer.status}"
    return True


def _after_failure(delivery: WebhookDelivery, retryable: bool) -> None:
    retries = current_app.config["WAHA_WEBHOOK_RETRY_ATTEMPTS"]
    if not retryable or delivery.attempt > retries:
        delivery.status = "dead"
        log.warning("delivery %s to %s is dead after attempt %d: %s", delivery.msg_id, delivery.url,
                    delivery.attempt, delivery.error)
        return
    delivery.status = "failed"
    db.session.add(WebhookDelivery(
        tenant_id=delivery.tenant_id, endpoint_id=delivery.endpoint_id, session_id=delivery.session_id,
        url=delivery.url, msg_id=delivery.msg_id, event_type=delivery.event_type,
        webhook_event_id=delivery.webhook_event_id, payload=delivery.payload, attempt=delivery.attempt + 1,
        status="pending", due_at=utcnow() + timedelta(seconds=backoff_seconds(delivery.attempt))))


def dispatch_due(limit: int = 500) -> int:
    """Queue pending attempts whose time has come (retries, and first attempts whose job was lost)."""
    now = utcnow()
    stmt = (select(WebhookDelivery).where(WebhookDelivery.status == "pending", WebhookDelivery.due_at <= now)
            .order_by(WebhookDelivery.due_at).limit(limit))
    if db.engine.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(db.session.scalars(stmt))
    lease = _lease_until(now)
    for row in rows:
        row.due_at = lease
    ids = [row.id for row in rows]
    db.session.commit()
    return queue_deliveries(ids) if ids else 0
