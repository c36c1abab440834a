"""Sessions and messages for the page tests, made through the real services against the simulator."""

from __future__ import annotations

import time
from typing import Any

from portal.extensions import db
from portal.models import Message, WahaSession
from portal.services import sessions as sessions_service
from tests.factories import TEST_ACTOR


def new_session(tenant: Any, name: str = "Support") -> WahaSession:
    """A session just created on the simulator (STARTING, soon SCAN_QR_CODE)."""
    return sessions_service.create_session(tenant, TEST_ACTOR, name=name)


def wait_for_status(tenant: Any, session: WahaSession, wanted: str, timeout: float = 5.0) -> WahaSession:
    """Sync with the simulator until the session reports `wanted`."""
    deadline = time.monotonic() + timeout
    while True:
        session = sessions_service.sync_session(tenant, session.id)
        if session.status == wanted or time.monotonic() > deadline:
            assert session.status == wanted, f"session stayed {session.status}, wanted {wanted}"
            return session
        time.sleep(0.05)


def scanning_session(tenant: Any, name: str = "Support") -> WahaSession:
    """A session showing its QR code."""
    return wait_for_status(tenant, new_session(tenant, name), "SCAN_QR_CODE")


def working_session(tenant: Any, sim: Any, name: str = "Support", phone: str = "491701234567") -> WahaSession:
    """A session linked to a phone (WORKING)."""
    session = new_session(tenant, name)
    sim.scan(session.external_name, phone=phone)
    return wait_for_status(tenant, session, "WORKING")


def stored_message(tenant: Any, session: WahaSession, *, direction: str = "out", status: str = "SERVER",
                   chat_id: str = "491709999999@c.us", body: str = "hello", **fields: Any) -> Message:
    """A message row as webhook processing or a send leaves it."""
    message = Message(tenant_id=tenant.id, session_id=session.id, direction=direction, chat_id=chat_id,
                      from_me=direction == "out", body=body, status=status, **fields)
    db.session.add(message)
    db.session.commit()
    return message
