"""Planning deliveries: the first attempts for every destination subscribed to an event, in the transaction
that applies it, and the envelope a tenant receives.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import WahaSession, WebhookDelivery, WebhookEndpoint, WebhookEvent
from portal.services.forwarding.deliveries import due_now
from portal.services.forwarding.endpoints import PORTAL_EVENTS


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
    stmt = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id.in_(tenant_ids), WebhookEndpoint.is_enabled.is_(True))
        .order_by(WebhookEndpoint.id)
    )
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
    due = due_now()
    rows: list[WebhookDelivery] = []
    for event, session in items:
        targets: list[tuple[int | None, str]] = [
            (e.id, e.url) for e in endpoints.get(session.tenant_id, []) if subscribed(e.events, event.event)
        ]
        if (
            session.webhook_url
            and event.event not in PORTAL_EVENTS
            and subscribed(session.webhook_events or ["*"], event.event)
        ):
            targets.append((None, session.webhook_url))
        if not targets:
            continue
        body = event_body(event, session)
        for endpoint_id, url in targets:
            rows.append(
                WebhookDelivery(
                    tenant_id=session.tenant_id,
                    endpoint_id=endpoint_id,
                    session_id=session.id,
                    url=url,
                    msg_id=event.event_id,
                    event_type=event.event,
                    webhook_event_id=event.id,
                    payload=body,
                    attempt=1,
                    status="pending",
                    due_at=due,
                )
            )
    db.session.add_all(rows)
    return rows


def plan_portal_event(
    tenant_id: int, event_type: str, data: dict[str, Any], session: WahaSession | None = None
) -> list[WebhookDelivery]:
    """First attempts of an event the portal itself raises (e.g. "session.attention") to subscribed endpoints."""
    endpoints = [e for e in _endpoints_for({tenant_id}).get(tenant_id, []) if subscribed(e.events, event_type)]
    if not endpoints:
        return []
    msg_id = "msg_" + secrets.token_hex(12)
    body = {
        "id": msg_id,
        "type": event_type,
        "timestamp": int(time.time() * 1000),
        "session": {"id": session.id, "name": session.name} if session is not None else None,
        "payload": data,
    }
    due = due_now()
    rows = [
        WebhookDelivery(
            tenant_id=tenant_id,
            endpoint_id=e.id,
            session_id=session.id if session else None,
            url=e.url,
            msg_id=msg_id,
            event_type=event_type,
            payload=body,
            attempt=1,
            status="pending",
            due_at=due,
        )
        for e in endpoints
    ]
    db.session.add_all(rows)
    return rows
