"""Signing deliveries (Standard Webhooks): the secrets of endpoints and session webhook URLs, and the headers."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

from portal.extensions import db
from portal.models import WahaSession, WebhookDelivery, WebhookEndpoint
from portal.services import session_secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh Standard Webhooks signing secret ("whsec_" + base64 of 24 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def session_webhook_secret(session: WahaSession) -> str:
    """The secret that signs deliveries to a session's own webhook URL: the stored one (shown to the tenant once,
    rotatable), or for sessions made before it was stored the value derived from WAHA_WEBHOOK_SECRET."""
    return session_secrets.secret_for(session)


def _secret_for(delivery: WebhookDelivery) -> str | None:
    if delivery.endpoint_id is not None:
        endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
        return endpoint.secret if endpoint is not None and endpoint.is_enabled else None
    session = db.session.get(WahaSession, delivery.session_id) if delivery.session_id else None
    return session_webhook_secret(session) if session is not None else None


def sign(secret: str, msg_id: str, when: datetime, body: str) -> dict[str, str]:
    """Standard Webhooks headers for one message."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body),
    }
