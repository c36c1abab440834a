"""Sending one delivery attempt and recording its outcome: signed POST through the pinned client, then
success, the next attempt after an exponential back-off with jitter, or "dead" after the last retry.
"""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import timedelta

import requests
from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.models import WebhookDelivery, utcnow
from portal.net import http as outbound
from portal.net import policy
from portal.services import destinations
from portal.services.forwarding.signing import _secret_for, sign

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 5.0  # first retry after ~5 s, then 10, 20, 40 ... (plus up to 20 % jitter)
RETRY_MAX_SECONDS = 6 * 3600
EXCERPT_MAX = 500
USER_AGENT = "WAHA-Portal-Webhooks/1"


def backoff_seconds(attempt: int) -> float:
    """Delay before the attempt after `attempt`: base x 2^(attempt-1), plus 0-20 % jitter, capped."""
    base = float(current_app.config.get("WEBHOOK_RETRY_BASE_SECONDS", RETRY_BASE_SECONDS))
    delay = min(RETRY_MAX_SECONDS, base * 2 ** max(0, attempt - 1))
    return delay * random.uniform(1.0, 1.2)


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
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **sign(secret, delivery.msg_id, utcnow(), body),
    }
    timeout = current_app.config["WAHA_WEBHOOK_TIMEOUT"] / 1000
    try:
        # The destination is checked again now and the connection goes to the address that passed the check;
        # redirects are not followed (one could point at an address the check refused).
        answer = outbound.request(
            "POST",
            delivery.url,
            allow_private=destinations.allow_private(),
            timeout=timeout,
            max_bytes=EXCERPT_MAX,
            headers=headers,
            data=body.encode(),
        )
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
        log.warning(
            "delivery %s to %s is dead after attempt %d: %s",
            delivery.msg_id,
            delivery.url,
            delivery.attempt,
            delivery.error,
        )
        return
    delivery.status = "failed"
    db.session.add(
        WebhookDelivery(
            tenant_id=delivery.tenant_id,
            endpoint_id=delivery.endpoint_id,
            session_id=delivery.session_id,
            url=delivery.url,
            msg_id=delivery.msg_id,
            event_type=delivery.event_type,
            webhook_event_id=delivery.webhook_event_id,
            payload=delivery.payload,
            attempt=delivery.attempt + 1,
            status="pending",
            due_at=utcnow() + timedelta(seconds=backoff_seconds(delivery.attempt)),
        )
    )
