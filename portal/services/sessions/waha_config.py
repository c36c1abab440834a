"""The WAHA session config built from ours: the tenant's settings, our metadata and the one signed webhook that
points WAHA at the portal."""

from __future__ import annotations

from typing import Any

from flask import current_app

from portal.models import WahaSession
from portal.services.sessions.validation import TENANT_CONFIG_KEYS

# WAHA retries a failed delivery to the portal 2^n * 2 s apart: about 17 minutes in all, enough to ride out a
# deploy; anything lost after that is picked up by the status sync.
PORTAL_WEBHOOK_RETRIES = {"policy": "exponential", "delaySeconds": 2, "attempts": 8}


def webhook_url_for(session: WahaSession) -> str:
    """Where WAHA posts this session's events: the portal's receiver, naming the session."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/webhooks/waha?session={session.id}"


def waha_config_for(session: WahaSession) -> dict[str, Any]:
    """The full WAHA session config: the tenant's own settings, our metadata, and one signed webhook to the portal.

    The portal subscribes to every event ("*"), so tenant endpoints can subscribe to any event later without
    re-configuring WAHA; events nobody wants are stored and dropped by the processing side.
    """
    tenant_config = dict(session.config or {})
    metadata = dict(tenant_config.pop("metadata", None) or {})
    metadata.update({"portal.tenant_id": str(session.tenant_id), "portal.session_id": session.id})
    config: dict[str, Any] = {key: value for key, value in tenant_config.items() if key in TENANT_CONFIG_KEYS}
    config["metadata"] = metadata
    config["webhooks"] = [
        {
            "url": webhook_url_for(session),
            "events": ["*"],
            "hmac": {"key": session.hmac_key},
            "retries": dict(PORTAL_WEBHOOK_RETRIES),
        }
    ]
    return config
