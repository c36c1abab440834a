"""All models, importable from one place (Alembic autogenerate sees every table through this)."""

from portal.models.access import ApiToken, AuditEvent, IdempotencyRecord
from portal.models.base import Base, get_for_tenant, rowcount, utcnow
from portal.models.campaigns import Campaign, CampaignRecipient, CampaignReject, OptOut, OptOutSettings
from portal.models.events import WebhookDelivery, WebhookEndpoint, WebhookEvent
from portal.models.inbox import CHAT_STATUSES, Chat, ChatNote, Contact, QuickReply
from portal.models.messages import ACK_NAMES, STATUS_RANK, Message
from portal.models.outreach import OutreachSettings, QueuedSend, SendQueueSession
from portal.models.privacy import EXPORT_STATES, TenantExport
from portal.models.quotas import LIMIT_COLUMNS, Plan, QuotaUsage, QuotaWarning
from portal.models.tenants import Invitation, Membership, Tenant, User
from portal.models.two_factor import RecoveryCode, RememberedBrowser, WebAuthnCredential
from portal.models.users_sessions import BrowserSession
from portal.models.waha import ENGINES, SESSION_STATUSES, Engine, SessionStatus, WahaServer, WahaSession

__all__ = [
    "ACK_NAMES",
    "CHAT_STATUSES",
    "ENGINES",
    "SESSION_STATUSES",
    "STATUS_RANK",
    "LIMIT_COLUMNS",
    "Plan",
    "QuotaUsage",
    "QuotaWarning",
    "ApiToken",
    "AuditEvent",
    "Base",
    "BrowserSession",
    "Engine",
    "Campaign",
    "CampaignRecipient",
    "CampaignReject",
    "Chat",
    "ChatNote",
    "Contact",
    "IdempotencyRecord",
    "Invitation",
    "Membership",
    "Message",
    "OutreachSettings",
    "QueuedSend",
    "SendQueueSession",
    "SessionStatus",
    "OptOut",
    "OptOutSettings",
    "QuickReply",
    "RecoveryCode",
    "RememberedBrowser",
    "Tenant",
    "TenantExport",
    "EXPORT_STATES",
    "User",
    "WahaServer",
    "WahaSession",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebAuthnCredential",
    "get_for_tenant",
    "rowcount",
    "utcnow",
]
