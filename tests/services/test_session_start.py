"""Start on a FAILED session starts it: WAHA counts FAILED as running, so its start alone changes nothing."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent
from portal.services import sessions
from tests.builders import TEST_ACTOR
from tests.helpers import wait_for


def test_start_session_brings_a_failed_session_back(tenant, sim, make_session):
    session = make_session(status="WORKING")
    sim.fail(session.external_name)
    assert sessions.sync_session(tenant, session.id).status == "FAILED"

    started = sessions.start_session(tenant, session.id, TEST_ACTOR)

    status = started.status
    assert status in ("STARTING", "WORKING")
    assert started.desired_state == "running"
    wait_for(lambda: sessions.sync_session(tenant, session.id).status == "WORKING")  # the login was kept
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "session.start")).all()
    assert [a.details["status"] for a in audit] == [status]
