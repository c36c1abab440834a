"""Builders of test data, going through the same services the product uses: tenants, users and tokens; sessions
in a given state on the simulator (through the services or the /waha API); stored messages; and WAHA webhook
traffic (envelopes as WAHA sends them, signed with a session's key)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import json
import re
import time
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from portal.extensions import db
from portal.models import Chat, Message, Tenant, User, WahaSession, utcnow
from portal.services import sessions as sessions_service
from portal.services import tenants as tenants_service
from portal.services import tokens as tokens_service
from portal.services.audit import Actor
from tests.helpers import Api, wait_for

TEST_ACTOR = Actor(type="system", label="tests")
PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


# ---- tenants, users, tokens ----------------------------------------------------------------------------------


def make_tenant(slug: str | None = None, **kwargs: Any) -> Tenant:
    n = next(_seq)
    return tenants_service.create_tenant(slug or f"tenant-{n}", kwargs.pop("name", f"Tenant {n}"), TEST_ACTOR, **kwargs)


@functools.cache
def password_hash() -> str:
    """The stored form of PASSWORD, made once per process by the product's hasher (scrypt, the default cost)."""
    return generate_password_hash(PASSWORD)


def make_user(tenant: Tenant | None = None, role: str = "owner", email: str | None = None, **kwargs: Any) -> User:
    """A user (through the service) whose password is PASSWORD, with `role` in `tenant` when one is given.

    The password's hash is made once per process: scrypt costs ~0.1 s of CPU by design, and most tests make a
    user. Every user made here thus shares one salt, which no test of the product's hashing relies on."""
    user = tenants_service.create_user(email or f"user{next(_seq)}@example.com", None, TEST_ACTOR, **kwargs)
    user.password_hash = password_hash()
    db.session.commit()
    if tenant is not None:
        tenants_service.set_membership(tenant, user, role, TEST_ACTOR)
    if user.is_platform_admin:
        give_second_factor(user)  # the platform area always requires one
    return user


def give_second_factor(user: User) -> str:
    """Turn on an authenticator app for `user` through the services; returns its secret.

    It is confirmed with the code of the previous time step, so the current code stays usable once."""
    import pyotp

    from portal.services.two_factor import totp

    secret = totp.start_enrolment(user)
    totp.confirm(user, pyotp.TOTP(secret).at(time.time() - totp.INTERVAL), TEST_ACTOR)
    return secret


def recovery_code(user: User) -> str:
    """A fresh recovery code of `user` (a new set is made each time), to pass the second step of a sign-in."""
    from portal.services.two_factor import recovery

    fresh = db.session.get(User, user.id)
    assert fresh is not None
    codes = recovery.generate(fresh)
    db.session.commit()
    return codes[0]


def member(tenant: Any, role: str, email: str | None = None) -> Any:
    """A user with `role` in `tenant`."""
    return make_user(tenant, role, email=email or f"{role}@{tenant.slug}.example.com")


def make_token(tenant: Tenant, scopes: list[str] | None = None, **kwargs: Any) -> str:
    """A bearer secret for `tenant`."""
    return tokens_service.create_token(tenant, kwargs.pop("name", "test token"), scopes, TEST_ACTOR, **kwargs).secret


def mailed_link(to: str, marker: str = "/invite/") -> str:
    """The last link containing `marker` mailed to `to` (tests read mail from portal.mail.outbox)."""
    from portal.mail import outbox

    for mail in reversed(outbox):
        if mail.to == to:
            found = re.search(r"(\S*" + re.escape(marker) + r"\S+)", mail.body)
            if found:
                return found.group(1)
    raise AssertionError(f"no mail to {to} with a {marker} link")


# ---- sessions ---------------------------------------------------------------------------------------------------


def new_session(tenant: Any, name: str = "Support", **kwargs: Any) -> WahaSession:
    """A session just created through the sessions service on the simulator (STARTING, soon SCAN_QR_CODE)."""
    return sessions_service.create_session(tenant, TEST_ACTOR, name=name, **kwargs)


def wait_for_status(owner: Any, session: Any, wanted: str, timeout: float = 5.0) -> Any:
    """Sync the session until WAHA reports `wanted` (the simulator moves through STARTING on a timer).

    `owner` is a tenant (sync through the service; returns the WahaSession), an `Api` client (`session` is the
    session's id; sync through POST /waha/sessions/{id}/sync; returns the JSON body) or a `WahaClient` (`session`
    is the session's name on WAHA; returns WAHA's session info)."""
    from portal.waha import WahaClient

    if isinstance(owner, Api):

        def sync() -> tuple[str, Any]:
            response = owner.post(f"/waha/sessions/{session}/sync")
            assert response.status_code == 200, response.get_json()
            body = response.get_json()
            return body["status"], body
    elif isinstance(owner, WahaClient):

        def sync() -> tuple[str, Any]:
            info = owner.get_session(session)
            return info["status"], info
    else:

        def sync() -> tuple[str, Any]:
            synced = sessions_service.sync_session(owner, session.id)
            return synced.status, synced

    deadline = time.monotonic() + timeout
    while True:
        status, current = sync()
        if status == wanted:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"session stayed {status}, expected {wanted}")
        time.sleep(0.02)


def scanning_session(tenant: Any, name: str = "Support", **kwargs: Any) -> WahaSession:
    """A session showing its QR code."""
    return wait_for_status(tenant, new_session(tenant, name, **kwargs), "SCAN_QR_CODE")


def working_session(
    tenant: Any, sim: Any, name: str = "Support", phone: str = "491701234567", **kwargs: Any
) -> WahaSession:
    """A session linked to a phone (WORKING)."""
    session = new_session(tenant, name, **kwargs)
    wait_for(lambda: sim.session(session.external_name)["status"] in ("SCAN_QR_CODE", "STARTING"))
    sim.scan(session.external_name, phone=phone)
    return wait_for_status(tenant, session, "WORKING")


def create_session(api: Api, name: str = "support", **fields: Any) -> dict[str, Any]:
    """A session created through POST /waha/sessions; returns the JSON body."""
    response = api.post("/waha/sessions", json={"sessionName": name, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def stored_message(
    tenant: Any,
    session: WahaSession,
    *,
    direction: str = "out",
    status: str = "SERVER",
    chat_id: str = "491709999999@c.us",
    body: str = "hello",
    **fields: Any,
) -> Message:
    """A message row as webhook processing or a send leaves it."""
    message = Message(
        tenant_id=tenant.id,
        session_id=session.id,
        direction=direction,
        chat_id=chat_id,
        from_me=direction == "out",
        body=body,
        status=status,
        **fields,
    )
    db.session.add(message)
    db.session.commit()
    return message


def stored_chat(
    session: WahaSession,
    number: str = "491709999999",
    *,
    name: str | None = None,
    minutes_ago: int = 0,
    preview: str = "hello",
    kind: str = "text",
    from_me: bool = False,
    last_status: str = "DEVICE",
    **fields: Any,
) -> Chat:
    """An inbox chat row as event processing leaves it (services.inbox.upkeep), its last message `minutes_ago`."""
    chat = Chat(
        tenant_id=session.tenant_id,
        session_id=session.id,
        chat_id=f"{number}@c.us",
        name=name,
        last_activity_at=utcnow() - timedelta(minutes=minutes_ago),
        last_preview=preview,
        last_kind=kind,
        last_from_me=from_me,
        last_status=last_status,
        **fields,
    )
    db.session.add(chat)
    db.session.commit()
    return chat


# ---- WAHA webhook traffic ---------------------------------------------------------------------------------------


def event_id() -> str:
    return f"evt_test{next(_seq):08d}{int(time.time() * 1000)}"


def envelope(
    session: WahaSession,
    event: str,
    payload: dict[str, Any],
    *,
    id: str | None = None,
    timestamp: int | None = None,
    me: dict | None = None,
) -> dict[str, Any]:
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
        "environment": {
            "version": "2026.7.1",
            "engine": "GOWS",
            "tier": "CORE",
            "browser": None,
            "platform": "linux/x64",
            "worker": {"id": None},
        },
    }


def inbound_payload(
    text: str = "hello", *, sender: str = "491709999999", wa_id: str | None = None, media: dict | None = None
) -> dict[str, Any]:
    chat = f"{sender}@c.us"
    wa_id = wa_id or f"A{next(_seq):019d}"
    return {
        "id": f"false_{chat}_{wa_id}",
        "timestamp": int(time.time()),
        "from": chat,
        "fromMe": False,
        "source": "app",
        "to": None,
        "participant": None,
        "body": text,
        "hasMedia": media is not None,
        "media": media,
        "ack": 2,
        "ackName": "DEVICE",
        "location": None,
        "vCards": [],
        "replyTo": None,
    }


def ack_payload(message_id: str, ack: int) -> dict[str, Any]:
    names = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
    from_me = message_id.startswith("true_")
    chat = message_id.split("_")[1]
    return {
        "id": message_id,
        "from": chat,
        "to": None,
        "participant": None,
        "fromMe": from_me,
        "ack": ack,
        "ackName": names.get(ack, "UNKNOWN"),
    }


def body_of(events: Any) -> bytes:
    """Compact JSON, as WAHA serializes (JSON.stringify)."""
    return json.dumps(events, separators=(",", ":")).encode()


def sign(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def post_events(
    client: FlaskClient, session: WahaSession, events: Any, *, key: str | None = None, session_param: str | None = None
) -> TestResponse:
    """POST one event (a dict) or a batch (a list) to the receiver, signed with the session's key."""
    body = events if isinstance(events, bytes) else body_of(events)
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Hmac": sign(key or session.hmac_key, body),
        "X-Webhook-Hmac-Algorithm": "sha512",
    }
    return client.post(f"/webhooks/waha?session={session_param or session.id}", data=body, headers=headers)


def relay_inbound_media(
    client: FlaskClient, sim: Any, session: WahaSession, content: bytes, mimetype: str = "image/png"
) -> str:
    """A picture (or other file) sent to the session's phone on the simulator, whose `message` event is posted to
    the receiver as WAHA would post it; returns the message's WAHA id."""
    message_id = sim.inbound(
        session.external_name,
        "491708888888",
        "a picture",
        media={"data": base64.b64encode(content).decode(), "mimetype": mimetype},
    )
    [produced] = [e for e in sim.events() if e["event"] == "message" and e["payload"]["id"] == message_id]
    post_events(client, session, produced)
    return message_id


def passkey_assertion(challenge: dict[str, Any], *, origin: str = "https://web.whatsapp.com") -> dict[str, Any]:
    """What `navigator.credentials.get({publicKey: challenge}).toJSON()` gives on web.whatsapp.com: the first
    allowed credential, clientDataJSON answering the challenge; authenticator data and signature are opaque bytes
    (WAHA passes them on to WhatsApp)."""

    def b64url(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    client_data = {"type": "webauthn.get", "challenge": challenge["challenge"], "origin": origin}
    credential = challenge["allowCredentials"][0]["id"]
    return {
        "id": credential,
        "rawId": credential,
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(json.dumps(client_data).encode()),
            "authenticatorData": b64url(b"\x49" * 37),
            "signature": b64url(b"\x30" * 70),
        },
    }


def passkey_session(tenant: Any, sim: Any, name: str = "Support", *, confirm: bool = False) -> WahaSession:
    """A session whose account asks for its passkey instead of taking the QR scan (PASSKEY_REQUIRED)."""
    session = scanning_session(tenant, name)
    sim.require_passkey(session.external_name, confirm=confirm)
    return wait_for_status(tenant, session, "PASSKEY_REQUIRED")
