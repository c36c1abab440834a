"""Sending delivery attempts and recording their outcome: a signed POST through the pinned client, then success,
the next attempt after an exponential back-off with jitter, or "dead" after the last retry.

`post` touches no database session, so the drain (portal.services.forwarding.drain) runs it on a pool of threads;
`record` writes a batch of outcomes in the caller's transaction.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import requests
import sqlalchemy as sa
from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.models import WebhookDelivery, utcnow
from portal.net import http as outbound
from portal.net import policy
from portal.services.forwarding.signing import sign

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


@dataclass(frozen=True)
class Attempt:
    """What a sending thread needs of one claimed attempt (plain values: threads never touch the ORM)."""

    id: int
    url: str
    msg_id: str
    payload: Any
    secret: str | None  # None: the destination was disabled or removed since the attempt was planned
    destination: str  # attempts with the same destination share a concurrency limit


@dataclass
class Outcome:
    """How one attempt went. `sent_at` is None when nothing was sent (refused, or released unsent)."""

    id: int
    status: str = "failed"  # "succeeded" or "failed" (record turns a last failure into "dead")
    retryable: bool = True
    error: str | None = None
    response_status: int | None = None
    response_excerpt: str | None = None
    sent_at: datetime | None = None
    duration_ms: int | None = None


def post(attempt: Attempt, *, timeout: float, allow_private: bool, resolve: policy.Resolver) -> Outcome:
    """Sign and POST one attempt through the pinned client (portal.net.http); never raises for network trouble.

    The destination is checked against the policy for this attempt and the connection goes to an address that
    passed the check (a kept-alive connection is pooled by that address, so it is reused only for a checked one);
    redirects are not followed.
    """
    outcome = Outcome(id=attempt.id)
    if attempt.secret is None:
        outcome.error, outcome.retryable = "the destination was disabled or removed", False
        return outcome
    body = json.dumps(attempt.payload, separators=(",", ":"), default=str)
    now = utcnow()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **sign(attempt.secret, attempt.msg_id, now, body),
    }
    started = time.perf_counter()
    try:
        answer = outbound.request(
            "POST",
            attempt.url,
            allow_private=allow_private,
            timeout=timeout,
            max_bytes=EXCERPT_MAX,
            headers=headers,
            data=body.encode(),
            resolve=resolve,
        )
    except policy.Refused as refused:
        outcome.error = f"destination refused: URL {refused.reason}"
        outcome.retryable = refused.kind == "unresolvable"
        return outcome
    except requests.Timeout:
        outcome.error = f"no answer within {timeout:g} s"
    except requests.RequestException as exc:
        outcome.error = f"could not connect: {type(exc).__name__}"
    else:
        outcome.response_status = answer.status
        outcome.response_excerpt = answer.text()[:EXCERPT_MAX] if answer.body else None
        if answer.ok:
            outcome.status = "succeeded"
        else:
            outcome.error = f"answered HTTP {answer.status}"
    outcome.sent_at = now
    outcome.duration_ms = int((time.perf_counter() - started) * 1000)
    return outcome


def record(outcomes: Sequence[Outcome], lease: datetime) -> None:
    """Write the outcomes of a batch claimed with `lease` (caller commits).

    Only rows still pending under this lease are written: a row whose lease ran out and that another batch
    claimed again is that batch's to record. Successes are one UPDATE for the batch; a failure adds the next
    attempt (same msg_id) due after the back-off, and a failure that may not be retried, or of the last retry,
    marks the row "dead".
    """
    table = cast(sa.Table, WebhookDelivery.__table__)
    ours = sa.and_(table.c.status == "pending", table.c.leased_until == lease)
    succeeded = [o for o in outcomes if o.status == "succeeded"]
    if succeeded:
        db.session.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("o_id"), ours)
            .values(
                status="succeeded",
                error=None,
                response_status=sa.bindparam("o_status"),
                response_excerpt=sa.bindparam("o_excerpt"),
                sent_at=sa.bindparam("o_sent"),
                duration_ms=sa.bindparam("o_ms"),
                leased_until=None,
            ),
            [
                {
                    "o_id": o.id,
                    "o_status": o.response_status,
                    "o_excerpt": o.response_excerpt,
                    "o_sent": o.sent_at,
                    "o_ms": o.duration_ms,
                }
                for o in succeeded
            ],
        )
    failed = {o.id: o for o in outcomes if o.status != "succeeded"}
    if failed:
        _record_failures(failed, lease)


def _record_failures(by_id: dict[int, Outcome], lease: datetime) -> None:
    stmt = select(WebhookDelivery).where(
        WebhookDelivery.id.in_(by_id), WebhookDelivery.status == "pending", WebhookDelivery.leased_until == lease
    )
    if db.engine.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    retries = current_app.config["WAHA_WEBHOOK_RETRY_ATTEMPTS"]
    now = utcnow()
    follow_ups: list[WebhookDelivery] = []
    for row in db.session.scalars(stmt):
        outcome = by_id[row.id]
        row.error = outcome.error[:500] if outcome.error else None
        row.response_status, row.response_excerpt = outcome.response_status, outcome.response_excerpt
        row.sent_at, row.duration_ms, row.leased_until = outcome.sent_at, outcome.duration_ms, None
        if not outcome.retryable or row.attempt > retries:
            row.status = "dead"
            log.warning("delivery %s to %s is dead after attempt %d: %s", row.msg_id, row.url, row.attempt, row.error)
        else:
            row.status = "failed"
            follow_ups.append(_next_attempt(row, now + timedelta(seconds=backoff_seconds(row.attempt))))
    if follow_ups:
        from portal.services.events.processing import preassign_ids

        preassign_ids(WebhookDelivery, follow_ups)
        db.session.add_all(follow_ups)
    db.session.flush()


def release(ids: Sequence[int], lease: datetime) -> None:
    """Give claimed attempts that were not sent back to the next batch (caller commits)."""
    if ids:
        db.session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(list(ids)), WebhookDelivery.leased_until == lease)
            .values(leased_until=None)
            .execution_options(synchronize_session=False)
        )


def _next_attempt(row: WebhookDelivery, due: datetime) -> WebhookDelivery:
    return WebhookDelivery(
        tenant_id=row.tenant_id,
        endpoint_id=row.endpoint_id,
        session_id=row.session_id,
        url=row.url,
        msg_id=row.msg_id,
        event_type=row.event_type,
        webhook_event_id=row.webhook_event_id,
        payload=row.payload,
        attempt=row.attempt + 1,
        status="pending",
        due_at=due,
    )
