"""The integrators' JSON API under /waha."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/waha")

# Views register themselves on `bp`; imported last because they import `bp`.
from portal.api import (  # noqa: E402,F401
    actions,
    campaigns,
    chats,
    exports,
    messages,
    meta,
    optouts,
    privacy,
    scheduled,
    sessions,
    tenant_data,
    usage,
    webhooks,
)
