"""Builders for WAHA webhook traffic in tests: envelopes as WAHA sends them, signed with a session's key."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from portal.models import WahaSession
from portal.services import sessions
from tests.factories import TEST_ACTOR
from tests.waiting import wait_for  # noqa: F401 - re-exported for the event tests

_seq = itertools.count(1)


def new_session(tenant: Any, name: str | None = None, *, sim: Any = None, working: bool = False,
                **kwargs: Any) -> WahaSession:
    """A real session created through the sessions service on the simulator; paired when `working`."""
    session = sessions.create_session(tenant, TEST_ACTOR, name=name or f"session-{next(_seq)}", **kwargs)
    if working:
        wait_for(lambda: sim.session(session.external_name)["status"] in ("SCAN_QR_CODE", "STARTING"))
        sim.scan(session.external_name)
        wait_for(lambda: sessions.sync_session(tenant, session.id).status == "WORKING")
    return sessions.get_session(tenant, session.id)


def event_id() -> str:
    return f"evt_test{next(_seq):08d}{int(time.time() * 1000)}"


def envelope(session: WahaSession, event: str, payload: dict[str, Any], *, id: str | None = None,
             timestamp: int | None = None, me: dict | None = None) -> dict[str, Any]:
    """A webhook body the way WAHA builds it (CONTRACT 8.4)."""
    return {
        "id": id or event_id(),
        "timestamp": timestamp or int(time.time() * 1000),
        "event": event,
        "session": session.external_name,
        "metadata": {"portal.tenant_id": str(session.tenant_id), "portal.session_id": session.id},
        "me": me,
        "payload": payload,
        "engine": "GOWS",
        "environment": {"version": "2026.7.1", "engine": "GOWS", "tier": "CORE", "browser": None,
                        "platform": "linux/x64", "worker": {"id": None}},
    }


def inbound_payload(text: str = "hello", *, sender: str = "491709999999", wa_id: str | None = None,
                    media: dict | None = None) -> dict[str, Any]:
    chat = f"{sender}@c.us"
    wa_id = wa_id or f"A{next(_seq):019d}"
    return {"id": f"false_{chat}_{wa_id}", "timestamp": int(time.time()), "from": chat, "fromMe": False,
            "source": "app", "to": None, "participant": None, "body": text, "hasMedia": media is not None,
            "media": media, "ack": 2, "ackName": "DEVICE", "location": None, "vCards": [], "replyTo": None}


def ack_payload(message_id: str, ack: int) -> dict[str, Any]:
    names = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
    from_me = message_id.startswith("true_")
    chat = message_id.split("_")[1]
    return {"id": message_id, "from": chat, "to": None, "participant": None, "fromMe": from_me, "ack": ack,
            "ackName": names.get(ack, "UNKNOWN")}


def body_of(events: Any) -> bytes:
    """Compact JSON, as WAHA serializes (JSON.stringify)."""
    return json.dumps(events, separators=(",", ":")).encode()


def sign(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def post_events(client: FlaskClient, session: WahaSession, events: Any, *, key: str | None = None,
                session_param: str | None = None) -> TestResponse:
    """POST one event (a dict) or a batch (a list) to the receiver, signed with the session's key."""
    body = events if isinstance(events, bytes) else body_of(events)
    headers = {"Content-Type": "application/json", "X-Webhook-Hmac": sign(key or session.hmac_key, body),
               "X-Webhook-Hmac-Algorithm": "sha512"}
    return client.post(f"/webhooks/waha?session={session_param or session.id}", data=body, headers=headers)


@contextlib.contextmanager
def quiet_waha_webhooks(app: Any) -> Iterator[None]:
    """Point PUBLIC_BASE_URL (the webhook URL new sessions give WAHA) at a closed port for the block."""
    previous = app.config["PUBLIC_BASE_URL"]
    app.config["PUBLIC_BASE_URL"] = "http://127.0.0.1:9"
    try:
        yield
    finally:
        app.config["PUBLIC_BASE_URL"] = previous
