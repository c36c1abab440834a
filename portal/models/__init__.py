"""All models, importable from one place (Alembic autogenerate sees every table through this)."""

from portal.models.access import ApiToken, AuditEvent, IdempotencyRecord
from portal.models.base import Base, get_for_tenant, rowcount, utcnow
from portal.models.events import WebhookDelivery, WebhookEndpoint, WebhookEvent
from portal.models.messages import ACK_NAMES, STATUS_RANK, Message
from portal.models.tenants import Invitation, Membership, Tenant, User
from portal.models.users_sessions import BrowserSession
from portal.models.waha import ENGINES, SESSION_STATUSES, Engine, SessionStatus, WahaServer, WahaSession

__all__ = [
    "ACK_NAMES",
    "ENGINES",
    "SESSION_STATUSES",
    "STATUS_RANK",
    "ApiToken",
    "AuditEvent",
    "Base",
    "BrowserSession",
    "Engine",
    "IdempotencyRecord",
    "Invitation",
    "Membership",
    "Message",
    "SessionStatus",
    "Tenant",
    "User",
    "WahaServer",
    "WahaSession",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "get_for_tenant",
    "rowcount",
    "utcnow",
]
