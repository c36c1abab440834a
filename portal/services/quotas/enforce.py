"""The checks at the point of use: one call per door, each refusing with the one 409 quota_exceeded.

Periodic limits are taken from the Redis counters (services.quotas.counters); standing amounts (sessions, team
seats, webhook endpoints) are counted in the database under a lock on the tenant's row, so two requests racing
for the last unit cannot both pass: the caller inserts its row and commits, which ends the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Invitation, Membership, Tenant, WahaSession, WebhookEndpoint, utcnow
from portal.services import pacing
from portal.services.quotas import counters
from portal.services.quotas.counters import Taken
from portal.services.quotas.limits import exceeded, limit_of, resets_at
from portal.waha.breaker import Verdict


def take_message(tenant: Tenant, session_id: str) -> Taken | None:
    """One message of the tenant's daily and monthly allowance (counted for the session too), or QuotaExceeded.
    None when nothing was counted (Redis away)."""
    return take_send(tenant, session_id).taken


@dataclass(frozen=True)
class SendGates:
    taken: Taken | None  # the unit of the quota (None: not counted, Redis away)
    verdict: Verdict | None  # the WAHA server's breaker, when asked (None: not asked, or Redis away)


def take_send(
    tenant: Tenant, session_id: str, *, paced: bool = False, breaker: tuple[str, float] | None = None
) -> SendGates:
    """A send's gates in one Redis round trip: the session's slot (`paced`, services.pacing: RateLimited when the
    tenant may not send or the slot is not due yet, and then no unit is taken), one message of the tenant's
    allowance (QuotaExceeded) and, once both passed, the verdict of the WAHA server's breaker (`breaker`: its key
    and reset seconds, `ServerBreaker.gate`) for the call to use (`ServerBreaker.answered`)."""
    rate, burst, pace = tenant.send_rate_per_minute, 0, None
    if paced:
        interval, tolerance, burst = pacing.slot(rate)
        pace = (pacing.KEY_PREFIX + session_id, interval, tolerance)
    day_limit, month_limit = limit_of(tenant, "messages_per_day"), limit_of(tenant, "messages_per_month")
    answer = counters.take("msg", tenant.id, 1, day_limit, month_limit, session_id, pace=pace, breaker=breaker)
    if answer.pace_wait is not None:
        raise pacing.refusal(answer.pace_wait, rate, burst)
    if answer.refused_by == "day":
        raise exceeded("messages_per_day", day_limit or 0, answer.used)
    if answer.refused_by == "month":
        raise exceeded("messages_per_month", month_limit or 0, answer.used)
    return SendGates(answer.taken, answer.verdict)


def give_back(taken: Taken | None) -> None:
    """Give back what a send took when it never reached WAHA."""
    if taken is not None:
        counters.give_back(taken)


def take_recipients(tenant_id: int, limit: int | None, n: int) -> Taken | None:
    """`n` campaign recipients of the month's allowance, or QuotaExceeded (nothing taken); what was taken, for
    `give_back` when the import does not go through."""
    if n <= 0:
        return None
    answer = counters.take("rcpt", tenant_id, n, None, limit)
    if answer.refused_by is not None:
        raise exceeded("campaign_recipients_per_month", limit or 0, answer.used)
    return answer.taken


def check_recipients_left(tenant: Tenant, n: int = 1) -> None:
    """QuotaExceeded when the month's campaign allowance has no room for `n` more recipients (checked when a
    campaign is created; its import takes the exact number)."""
    limit = limit_of(tenant, "campaign_recipients_per_month")
    if limit is None:
        return
    _, month, _ = counters.current("rcpt", tenant.id, utcnow().date())
    if month + max(n, 1) > limit:
        raise exceeded("campaign_recipients_per_month", limit, month)


def data_lines(content: bytes) -> int:
    """The non-empty lines of a CSV after its header: the audience's size before it is read."""
    return sum(1 for line in content.splitlines()[1:] if line.strip())


def lock_tenant(tenant_id: int) -> None:
    """Hold the tenant's row until the transaction ends (PostgreSQL; SQLite serialises writers anyway)."""
    db.session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


def _standing(tenant: Tenant, name: str, count_stmt: object) -> None:
    limit = limit_of(tenant, name)
    if limit is None:
        return
    lock_tenant(tenant.id)
    used = int(db.session.scalar(count_stmt) or 0)  # type: ignore[call-overload]
    if used >= limit:
        raise exceeded(name, limit, used)


def check_sessions(tenant: Tenant) -> None:
    """Room for one more session (the caller inserts it in this transaction)."""
    _standing(tenant, "sessions", select(func.count(WahaSession.id)).where(WahaSession.tenant_id == tenant.id))


def seats_used(tenant_id: int, with_invitations: bool) -> int:
    members = db.session.scalar(select(func.count(Membership.id)).where(Membership.tenant_id == tenant_id)) or 0
    if not with_invitations:
        return int(members)
    now = utcnow()
    pending = db.session.scalar(
        select(func.count(Invitation.id)).where(
            Invitation.tenant_id == tenant_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
    )
    return int(members) + int(pending or 0)


def check_seats(tenant: Tenant, *, accepting: bool = False) -> None:
    """Room for one more member: an invitation counts members and open invitations; accepting one counts the
    members only (its own invitation already held the seat)."""
    limit = limit_of(tenant, "team_seats")
    if limit is None:
        return
    lock_tenant(tenant.id)
    used = seats_used(tenant.id, not accepting)
    if used >= limit:
        raise exceeded("team_seats", limit, used)


def check_endpoints(tenant: Tenant) -> None:
    """Room for one more webhook endpoint."""
    _standing(
        tenant,
        "webhook_endpoints",
        select(func.count(WebhookEndpoint.id)).where(WebhookEndpoint.tenant_id == tenant.id),
    )


def check_upload(tenant: Tenant) -> None:
    """Outbound uploads are refused while the tenant's stored media is at or over its limit."""
    limit = limit_of(tenant, "media_storage")
    if limit is None:
        return
    _, used = counters.take_media(tenant.id, 0, limit)
    if used >= limit:
        raise exceeded("media_storage", limit, used)


def take_media_bytes(tenant: Tenant, n: int) -> bool:
    """Count `n` bytes of an inbound file about to be stored; False (nothing counted) when over the limit."""
    taken, _ = counters.take_media(tenant.id, n, limit_of(tenant, "media_storage"))
    return taken


def queue_gate(item: Any, session: Any) -> Any:
    """The send queue's gate (services.outreach): while the tenant's daily or monthly messages are used up, its
    queued messages wait until the count starts again, without a send being tried for each (one read of the
    counts; nothing at all for a tenant without those limits). The send's own check stays the exact one."""
    tenant = db.session.get(Tenant, item.tenant_id)
    if tenant is None:
        return None
    day_limit, month_limit = limit_of(tenant, "messages_per_day"), limit_of(tenant, "messages_per_month")
    if day_limit is None and month_limit is None:
        return None
    now = utcnow()
    day, month = counters.peek("msg", tenant.id, now.date())
    for limit, used, period in ((day_limit, day, "day"), (month_limit, month, "month")):
        if limit is not None and used is not None and used >= limit:
            from portal.services.outreach import Hold

            return Hold(resets_at(period, now), "quota_exceeded")
    return None


def register() -> None:
    """Plug the quota gate into the send queue (idempotent)."""
    from portal.services import outreach

    outreach.register_gate(queue_gate)
