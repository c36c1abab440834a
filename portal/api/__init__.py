"""The integrators' JSON API under /waha."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/waha")

# Views register themselves on `bp`; imported last because they import `bp`.
from portal.api import actions, campaigns, chats, exports, messages, meta, privacy, scheduled, sessions, usage, webhooks  # noqa: E402,F401
