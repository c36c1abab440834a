"""/waha/webhooks: the tenant's webhook endpoints and delivery attempts, and replaying an attempt."""

from __future__ import annotations

from flask import Response

from portal.api import bp
from portal.api.auth import api_route
from portal.api.common import actor, query, send, tenant
from portal.api.schemas import (
    DeliveryListQuery,
    DeliveryPage,
    WebhookDeliveryResponse,
    WebhookEndpointList,
    WebhookEndpointResponse,
)
from portal.converters import parse_id
from portal.services import forwarding
from portal.services.errors import NotFound


def _delivery_id(raw: str) -> int:
    delivery_id = parse_id(raw, big=True)
    if delivery_id is None:
        raise NotFound("No such delivery.", code="delivery_not_found")
    return delivery_id


@bp.get("/webhooks/endpoints")
@api_route("webhooks:read")
def list_webhook_endpoints() -> Response:
    rows = forwarding.list_endpoints(tenant())
    return send(WebhookEndpointList(data=[WebhookEndpointResponse.of(e) for e in rows]))


@bp.get("/webhooks/deliveries")
@api_route("webhooks:read")
def list_webhook_deliveries() -> Response:
    filters = query(DeliveryListQuery)
    page = forwarding.list_deliveries(
        tenant(), endpoint_id=filters.endpointId, status=filters.status, cursor=filters.cursor, limit=filters.limit
    )
    return send(DeliveryPage(data=[WebhookDeliveryResponse.of(d) for d in page.items], nextCursor=page.next_cursor))


@bp.post("/webhooks/deliveries/<delivery_id>/replay")
@api_route("webhooks:manage")
def replay_webhook_delivery(delivery_id: str) -> Response:
    replay = forwarding.replay_delivery(tenant(), _delivery_id(delivery_id), actor())
    # 202: the new attempt is queued, not yet sent.
    return send(WebhookDeliveryResponse.of(replay), 202)
