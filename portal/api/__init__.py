"""The integrators' JSON API under /waha."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/waha")

# Views register themselves on `bp`; imported last because they import `bp`.
from portal.api import actions, campaigns, chats, messages, meta, optouts, scheduled, sessions, webhooks  # noqa: E402,F401
