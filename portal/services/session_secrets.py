"""The signing secret of a session's own webhook URL: made at creation, shown to the tenant once, rotatable.

The portal forwards a session's events to the tenant's `webhook_url` itself (WAHA only ever posts to the
portal's receiver, with the separate `hmac_key` the tenant never sees), signed Standard Webhooks style with
this secret. It is stored encrypted in `waha_sessions.webhook_secret`. Sessions created before that column
existed have none stored and keep the value derived from WAHA_WEBHOOK_SECRET, so their receivers keep
verifying after an upgrade; a rotation gives them a stored one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from flask import current_app

from portal.extensions import db
from portal.models import Tenant, WahaSession
from portal.services import audit
from portal.services.audit import Actor

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh Standard Webhooks signing secret ("whsec_" + base64 of 24 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def derived_secret(session_id: str) -> str:
    """The secret sessions had before secrets were stored: derived from WAHA_WEBHOOK_SECRET and the session id."""
    root = current_app.config["WAHA_WEBHOOK_SECRET"].encode()
    digest = hmac.new(root, f"session-webhook:{session_id}".encode(), hashlib.sha256).digest()[:24]
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def secret_for(session: WahaSession) -> str:
    """The secret that signs deliveries to this session's webhook URL now."""
    return session.webhook_secret or derived_secret(session.id)


def rotate(tenant: Tenant, session_id: str, actor: Actor) -> tuple[WahaSession, str]:
    """Give the session a new signing secret (answered this once); the old one stops signing at once, retries
    of pending deliveries included. Another tenant's session is session_not_found."""
    from portal.services.sessions import get_session

    session = get_session(tenant, session_id)
    secret = new_secret()
    session.webhook_secret = secret
    audit.record(
        tenant.id,
        "session.rotate_webhook_secret",
        actor,
        target_type="session",
        target_id=session.id,
        details={"name": session.name},
    )
    db.session.commit()
    return session, secret
