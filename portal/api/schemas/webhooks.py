"""Webhook DTOs of the /waha API: tenant endpoints, the delivery list query and delivery answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from portal.api.schemas.common import CURSOR_PATTERN, MAX_PAGE, WIRE_INT, Page, QueryInt, Request, Response
from portal.services.forwarding import DeliveryStatus


class DeliveryListQuery(Request):
    endpointId: Annotated[int, Field(ge=1, le=2**31 - 1), WIRE_INT] | None = Field(
        None, description="Only attempts to this webhook endpoint."
    )
    status: DeliveryStatus | None = Field(None, description="pending, succeeded, failed or dead.")
    cursor: str | None = Field(
        None, max_length=200, pattern=CURSOR_PATTERN, description="nextCursor of the previous page, as given (opaque)."
    )
    limit: QueryInt = Field(50, ge=1, le=MAX_PAGE, description="Page size.")


class WebhookEndpointResponse(Response):
    """A tenant webhook endpoint; its signing secret is never shown again after creation."""

    id: int
    url: str
    description: str
    events: list[str] = Field(description='Event names sent to it; empty or ["*"] means every event.')
    enabled: bool
    createdAt: datetime

    @classmethod
    def of(cls, endpoint: Any) -> WebhookEndpointResponse:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description or "",
            events=list(endpoint.events or []),
            enabled=endpoint.is_enabled,
            createdAt=endpoint.created_at,
        )


class WebhookEndpointList(Response):
    data: list[WebhookEndpointResponse]


class WebhookDeliveryResponse(Response):
    """One attempt to deliver one event; retries and replays are new attempts with the same msgId."""

    id: int
    endpointId: int | None = Field(description="null for deliveries to a session's own webhookUrl.")
    sessionId: str | None
    url: str
    msgId: str = Field(description="The webhook-id header, the same on every attempt of one event.")
    eventType: str
    attempt: int
    status: DeliveryStatus
    responseStatus: int | None = Field(description="HTTP status your URL answered, if it answered.")
    error: str | None
    durationMs: int | None
    createdAt: datetime

    @classmethod
    def of(cls, delivery: Any) -> WebhookDeliveryResponse:
        return cls(
            id=delivery.id,
            endpointId=delivery.endpoint_id,
            sessionId=delivery.session_id,
            url=delivery.url,
            msgId=delivery.msg_id,
            eventType=delivery.event_type,
            attempt=delivery.attempt,
            status=delivery.status,
            responseStatus=delivery.response_status,
            error=delivery.error,
            durationMs=delivery.duration_ms,
            createdAt=delivery.created_at,
        )


class DeliveryPage(Page[WebhookDeliveryResponse]):
    pass
