"""A tenant's webhook endpoints: checking their URL, events and description, and creating, changing, rotating
and deleting them (audited). The URL passes the destination policy (portal.services.destinations).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import Tenant, WebhookEndpoint, get_for_tenant
from portal.services import audit, destinations
from portal.services.audit import Actor
from portal.services.errors import Invalid, NotFound
from portal.services.forwarding.signing import new_secret

URL_MAX = 2048
DESCRIPTION_MAX = 200
PORTAL_EVENTS = frozenset({"session.attention", "session.limited", "message.scheduled_late", "tenant.quota", "test"})
# The events tenants most often forward, in the order the portal offers them, with the words it shows: a
# session's own webhook picks among these; an endpoint also gets "*" and the portal's own event.
# Labels marked for translation: the pages show them in the reader's language (the API shows the names).
COMMON_EVENTS: tuple[tuple[str, str], ...] = (
    ("session.status", N_("Session status changes")),
    ("message", N_("Incoming messages")),
    ("message.any", N_("Every message, including those sent from the phone")),
    ("message.ack", N_("Delivery and read receipts")),
    ("message.reaction", N_("Reactions")),
    ("message.revoked", N_("Deleted messages")),
    ("message.edited", N_("Edited messages")),
    ("presence.update", N_("Online and typing presence")),
    ("call.received", N_("Incoming calls")),
    ("group.v2.participants", N_("Group members joining or leaving")),
)
ENDPOINT_EVENTS: tuple[tuple[str, str], ...] = (
    ("*", N_("Every event")),
    *COMMON_EVENTS,
    ("session.attention", N_("A session needs attention (the portal's own event)")),
    ("session.limited", N_("WhatsApp limits a session's number: timelock or new-chat cap (the portal's own event)")),
    ("message.scheduled_late", N_("A scheduled message is late: its session was not working (the portal's own event)")),
    ("tenant.quota", N_("80 or 100 percent of a plan's limit is used (the portal's own event)")),
)


def _waha_events() -> frozenset[str]:
    from portal.services.sessions import WAHA_EVENTS

    return WAHA_EVENTS


def endpoint_event_choices(current: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The events an endpoint's form offers, as (name, words): ENDPOINT_EVENTS, then any other name the endpoint
    has already (set elsewhere), so saving the form keeps it."""
    offered = [name for name, _ in ENDPOINT_EVENTS]
    return [*ENDPOINT_EVENTS, *((name, name) for name in current if name not in offered)]


def destination_problem(url: str) -> str | None:
    """Why `url` may not receive webhooks (None when it may): see portal.services.destinations."""
    return destinations.problem(url)


def _clean_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise Invalid.field("url", N_("Give the URL that should receive the events."))
    if len(url.strip()) > URL_MAX:
        raise Invalid.field("url", N_f("The URL must be at most %(URL_MAX)s characters.", URL_MAX=URL_MAX))
    return destinations.clean_url(url, "url")


def _clean_events(events: Any) -> list[str]:
    if events is None:
        return ["*"]
    if isinstance(events, str):
        events = [e.strip() for e in events.split(",") if e.strip()]
    if not isinstance(events, (list, tuple)) or not all(isinstance(e, str) for e in events):
        raise Invalid.field("events", N_("Events must be a list of event names."))
    known = _waha_events() | PORTAL_EVENTS | {"*"}
    unknown = sorted(set(events) - known)
    if unknown:
        raise Invalid.field("events", N_f("Unknown event name(s): %(value)s.", value=", ".join(unknown)))
    return list(dict.fromkeys(events)) or ["*"]


def _clean_description(description: Any) -> str:
    if description is None:
        return ""
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
        raise Invalid.field(
            "description",
            N_f(
                "The description must be text of at most %(DESCRIPTION_MAX)s characters.",
                DESCRIPTION_MAX=DESCRIPTION_MAX,
            ),
        )
    return description.strip()


def create_endpoint(
    tenant: Tenant, actor: Actor, *, url: Any, events: Any = None, description: Any = ""
) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint; returns it with its signing secret, which is shown this once (stored encrypted)."""
    clean = {"url": _clean_url(url), "events": _clean_events(events), "description": _clean_description(description)}
    from portal.services import quotas

    try:
        quotas.check_endpoints(tenant)  # locks the tenant's row until this endpoint is committed
    except quotas.QuotaExceeded:
        db.session.rollback()
        raise
    secret = new_secret()
    endpoint = WebhookEndpoint(tenant_id=tenant.id, secret=secret, is_enabled=True, **clean)
    db.session.add(endpoint)
    db.session.flush()
    audit.record(
        tenant.id,
        "webhook.create",
        actor,
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        details={"url": clean["url"], "events": clean["events"]},
    )
    db.session.commit()
    return endpoint, secret


def list_endpoints(tenant: Tenant) -> list[WebhookEndpoint]:
    """The tenant's endpoints, oldest first."""
    return list(db.session.scalars(WebhookEndpoint.scoped(tenant.id).order_by(WebhookEndpoint.id)))


def get_endpoint(tenant: Tenant, endpoint_id: Any) -> WebhookEndpoint:
    """One of the tenant's endpoints; NotFound "endpoint_not_found" otherwise (also for another tenant's)."""
    endpoint = get_for_tenant(db.session, WebhookEndpoint, tenant.id, endpoint_id)
    if endpoint is None:
        raise NotFound(N_("No such webhook endpoint."), code="endpoint_not_found")
    return endpoint


def update_endpoint(tenant: Tenant, endpoint_id: Any, actor: Actor, **fields: Any) -> WebhookEndpoint:
    """Change url, events, description or is_enabled (only the fields given)."""
    endpoint = get_endpoint(tenant, endpoint_id)
    unknown = set(fields) - {"url", "events", "description", "is_enabled"}
    if unknown:
        raise Invalid(
            N_f("Unknown field(s): %(value)s.", value=", ".join(sorted(unknown))),
            details={"fields": [{"field": f, "message": "Unknown field."} for f in sorted(unknown)]},
        )
    changes: dict[str, Any] = {}
    if "url" in fields:
        changes["url"] = _clean_url(fields["url"])
    if "events" in fields:
        changes["events"] = _clean_events(fields["events"])
    if "description" in fields:
        changes["description"] = _clean_description(fields["description"])
    if "is_enabled" in fields:
        if not isinstance(fields["is_enabled"], bool):
            raise Invalid.field("is_enabled", N_("is_enabled must be true or false."))
        changes["is_enabled"] = fields["is_enabled"]
    for key, value in changes.items():
        setattr(endpoint, key, value)
    audit.record(
        tenant.id, "webhook.update", actor, target_type="webhook_endpoint", target_id=endpoint.id, details=dict(changes)
    )
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
    audit.record(
        tenant.id,
        "webhook.delete",
        actor,
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        details={"url": endpoint.url},
    )
    db.session.delete(endpoint)
    db.session.commit()
