"""The delivery ledger: listing and reading attempts, replaying one, a test event, and asking for them to be sent.

Every delivery attempt is a `WebhookDelivery` row, due at `due_at`; the forwarding drain
(portal.services.forwarding.drain) claims due rows in batches. `queue_deliveries` asks for a drain after new rows
are committed; `dispatch_due` (scheduled) asks again whenever attempts are due, so a lost signal only delays them.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy import func, literal, select, tuple_

from portal import pagination
from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import Tenant, WebhookDelivery, get_for_tenant, utcnow
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Invalid, NotFound
from portal.services.forwarding.drain import request_drain
from portal.services.forwarding.endpoints import get_endpoint

log = logging.getLogger(__name__)

CURSOR_PREFIX = "d"
DISPATCH_COUNT_MAX = 10_000  # dispatch_due counts due attempts up to this many (a bounded index scan)


@dataclass
class DeliveryPage:
    """One page of deliveries, newest first; pass `next_cursor` back for the next page (None on the last)."""

    items: list[WebhookDelivery]
    next_cursor: str | None


DeliveryStatus = Literal["pending", "succeeded", "failed", "dead"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = get_args(DeliveryStatus)


def list_deliveries(
    tenant: Tenant, *, endpoint_id: Any = None, status: str | None = None, cursor: str | None = None, limit: int = 50
) -> DeliveryPage:
    """The tenant's delivery attempts, newest first, optionally of one endpoint and one status."""
    limit = max(1, min(int(limit), 200))
    stmt = filtered_deliveries(tenant, endpoint_id=endpoint_id, status=status)
    if cursor:
        stmt = stmt.where(_before(tenant, pagination.decode_id(cursor, CURSOR_PREFIX)))
    # (created_at, id), the order of the (tenant, created_at, id) index: every page is one short range of it.
    order = (WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    rows = list(db.session.scalars(stmt.order_by(*order).limit(limit + 1)))
    next_cursor = pagination.encode_id(rows[limit - 1].id, CURSOR_PREFIX) if len(rows) > limit else None
    return DeliveryPage(items=rows[:limit], next_cursor=next_cursor)


def filtered_deliveries(
    tenant: Tenant,
    *columns: Any,
    endpoint_id: Any = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Any:
    """The tenant's attempts (whole rows, or only `columns`) of one endpoint (NotFound when it is not the tenant's)
    and one status, created in [since, until), unordered: the delivery log and its CSV export read the same rows."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise Invalid.field("status", N_f("Status must be one of %(value)s.", value=", ".join(DELIVERY_STATUSES)))
    if columns:
        stmt = select(*columns).where(WebhookDelivery.tenant_id == tenant.id)
    else:
        stmt = WebhookDelivery.scoped(tenant.id)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == get_endpoint(tenant, endpoint_id).id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    if since is not None:
        stmt = stmt.where(WebhookDelivery.created_at >= since)
    if until is not None:
        stmt = stmt.where(WebhookDelivery.created_at < until)
    return stmt


def _before(tenant: Tenant, delivery_id: int) -> Any:
    """The keyset condition "listed after the attempt `delivery_id`" (the cursor names that attempt)."""
    anchor = db.session.execute(
        select(WebhookDelivery.created_at).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.tenant_id == tenant.id
        )
    ).scalar()
    if anchor is None:  # not the tenant's, or deleted since: the ids below it
        return WebhookDelivery.id < delivery_id
    return tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < tuple_(literal(anchor), literal(delivery_id))


def get_delivery(tenant: Tenant, delivery_id: Any) -> WebhookDelivery:
    """One of the tenant's delivery attempts; NotFound "delivery_not_found" otherwise."""
    delivery = get_for_tenant(db.session, WebhookDelivery, tenant.id, delivery_id)
    if delivery is None:
        raise NotFound(N_("No such delivery."), code="delivery_not_found")
    return delivery


def due_now() -> datetime:
    """The due time of an attempt to send at once (first attempts, replays, test events)."""
    return utcnow()


def replay_delivery(tenant: Tenant, delivery_id: Any, actor: Actor) -> WebhookDelivery:
    """Send a delivery again as a new attempt (same msg_id, to the endpoint's current URL)."""
    original = get_delivery(tenant, delivery_id)
    url = original.url
    if original.endpoint_id is not None:
        endpoint = get_endpoint(tenant, original.endpoint_id)
        url = endpoint.url
    last = (
        db.session.scalar(
            select(func.max(WebhookDelivery.attempt)).where(
                WebhookDelivery.tenant_id == tenant.id,
                WebhookDelivery.msg_id == original.msg_id,
                WebhookDelivery.endpoint_id.is_(None)
                if original.endpoint_id is None
                else WebhookDelivery.endpoint_id == original.endpoint_id,
            )
        )
        or original.attempt
    )
    replay = WebhookDelivery(
        tenant_id=tenant.id,
        endpoint_id=original.endpoint_id,
        session_id=original.session_id,
        url=url,
        msg_id=original.msg_id,
        event_type=original.event_type,
        webhook_event_id=original.webhook_event_id,
        payload=original.payload,
        attempt=last + 1,
        status="pending",
        due_at=due_now(),
    )
    db.session.add(replay)
    db.session.flush()
    audit.record(
        tenant.id,
        "webhook.replay",
        actor,
        target_type="webhook_delivery",
        target_id=replay.id,
        details={"replayed": original.id, "msg_id": original.msg_id},
    )
    db.session.commit()
    queue_deliveries([replay.id])
    return replay


def send_test_event(tenant: Tenant, endpoint_id: Any, actor: Actor) -> WebhookDelivery:
    """Queue a "test" event to one endpoint, to check its URL and signature verification."""
    endpoint = get_endpoint(tenant, endpoint_id)
    msg_id = "msg_test_" + secrets.token_hex(8)
    # the same envelope as every other event, so a handler written against the test works on real events
    body = {
        "id": msg_id,
        "type": "test",
        "timestamp": int(time.time() * 1000),
        "session": None,
        "payload": {"message": "This is a test event from WAHA Portal."},
    }
    delivery = WebhookDelivery(
        tenant_id=tenant.id,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        msg_id=msg_id,
        event_type="test",
        payload=body,
        attempt=1,
        status="pending",
        due_at=due_now(),
    )
    db.session.add(delivery)
    db.session.flush()
    audit.record(tenant.id, "webhook.test", actor, target_type="webhook_endpoint", target_id=endpoint.id)
    db.session.commit()
    queue_deliveries([delivery.id])
    return delivery


def queue_deliveries(delivery_ids: list[int]) -> int:
    """Ask for the forwarding drain after new attempts were committed; returns how many were announced. Never
    raises: without Redis the scheduled `dispatch_due` asks again within seconds."""
    if not delivery_ids:
        return 0
    request_drain()
    return len(delivery_ids)


def dispatch_due() -> int:
    """Ask for a drain when attempts are due and no batch holds them (retries whose back-off has passed, attempts
    whose signal was lost, attempts of a worker that died once their lease ran out); returns how many are due
    (counted up to DISPATCH_COUNT_MAX)."""
    now = utcnow()
    due_rows = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.due_at <= now,
            sa.or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now),
        )
        .limit(DISPATCH_COUNT_MAX)
    )
    due = db.session.scalar(select(func.count()).select_from(due_rows.subquery()))
    db.session.rollback()
    if due:
        request_drain()
    return int(due or 0)
