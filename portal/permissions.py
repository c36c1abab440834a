"""Roles and what they may do: the one table every view and API endpoint checks against."""

from __future__ import annotations

from portal.i18n import N_

ROLES = ("owner", "admin", "operator", "viewer")

PERMISSIONS = {
    "sessions:read": N_("See sessions and their status"),
    "sessions:write": N_(
        "Create, start, stop, restart, log out and delete sessions; link a phone (QR or pairing code)"
    ),
    "messages:read": N_("Read the message log and media"),
    "messages:send": N_("Send messages; mark chats read, resolve and reopen them, write notes"),
    "chats:manage": N_("Assign chats to members (the inbox)"),
    "webhooks:read": N_("See webhook endpoints and deliveries"),
    "webhooks:manage": N_("Add, change and replay webhook endpoints"),
    "audit:read": N_("Read the audit log"),
    "tokens:manage": N_("Create and revoke API tokens"),
    "team:manage": N_("Invite, change and remove members"),
    "settings:manage": N_("Change tenant settings"),
    "quick_replies:manage": N_("Add, change and delete the tenant's quick replies"),
    "contacts:privacy": N_("Export and erase a contact's data (data protection requests); export the tenant's data"),
    "tenant:delete": N_("Ask for the tenant's deletion, or cancel it during the grace period"),
}

# Linking a phone to a session is one permission, whichever way it is done: whoever may see the QR code (or a
# screenshot of it) or ask for a pairing code can take over the session's WhatsApp account. Read-only roles and
# scopes never get it.
LINK_PHONE = "sessions:write"

# What an API token gets when no scopes are named: the /waha API's own permissions, not team or token admin.
API_SCOPES = (
    "sessions:read",
    "sessions:write",
    "messages:read",
    "messages:send",
    "chats:manage",
    "quick_replies:manage",
    "webhooks:read",
    "webhooks:manage",
)

_READ = {"sessions:read", "messages:read", "webhooks:read"}
_OPERATE = _READ | {"sessions:write", "messages:send", "chats:manage"}
_ADMIN = _OPERATE | {
    "webhooks:manage",
    "quick_replies:manage",
    "audit:read",
    "tokens:manage",
    "team:manage",
    "settings:manage",
    "contacts:privacy",
}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "owner": frozenset(PERMISSIONS),
    "admin": frozenset(_ADMIN),
    "operator": frozenset(_OPERATE),
    "viewer": frozenset(_READ),
}

# Roles an admin may hand out; only owners make owners.
ASSIGNABLE_BY = {"owner": set(ROLES), "admin": {"admin", "operator", "viewer"}}


def permissions_for_roles(roles: list[str] | tuple[str, ...] | set[str]) -> frozenset[str]:
    """Union of the permissions of the given roles (unknown roles grant nothing)."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    return frozenset(granted)
