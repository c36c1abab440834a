"""The whole path over real HTTP: WAHA (the simulator) posts signed events to the live portal, a real RQ worker
applies them; and recovery after the WAHA server restarts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from portal.extensions import db
from portal.jobs import QUEUE_MAINTENANCE, enqueue
from portal.models import Message, WahaSession, WebhookEvent
from portal.services import sessions
from tests.builders import TEST_ACTOR, new_session, working_session
from tests.helpers import wait_for


def _stored(event: str, session_id: str) -> int:
    db.session.expire_all()
    return db.session.scalar(
        select(func.count())
        .select_from(WebhookEvent)
        .where(WebhookEvent.event == event, WebhookEvent.session_id == session_id)
    )


def _row(session_id: str) -> WahaSession:
    db.session.expire_all()
    return db.session.get(WahaSession, session_id)


def test_inbound_message_travels_from_waha_to_a_message_row(live_server, tenant, sim, run_jobs):
    session = new_session(tenant, "Live")
    wait_for(lambda: sim.session(session.external_name)["status"] == "SCAN_QR_CODE")
    sim.scan(session.external_name)
    wait_for(lambda: _stored("session.status", session.id) >= 3)  # STARTING, SCAN_QR_CODE, WORKING
    message_id = sim.inbound(session.external_name, "491707777777", "hello over HTTP")
    wait_for(lambda: _stored("message", session.id) == 1 and _stored("message.any", session.id) == 1)

    run_jobs()
    message = db.session.scalar(select(Message).where(Message.waha_message_id == message_id))
    assert (message.body, message.direction, message.chat_id) == ("hello over HTTP", "in", "491707777777@c.us")
    row = _row(session.id)
    assert row.status == "WORKING" and row.me["id"] == "491701234567@c.us"
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.session_id == session.id, WebhookEvent.status != "done")
        )
        == 0
    )


def _sync_through_worker(run_jobs: Any) -> None:
    enqueue("portal.jobs.maintenance.sync_sessions", queue=QUEUE_MAINTENANCE)
    run_jobs()


def test_sessions_that_should_run_are_running_again_after_waha_restarts(tenant, sim, run_jobs):
    running = [working_session(tenant, sim, f"Runs {n}") for n in range(2)]
    parked = working_session(tenant, sim, "Parked")
    sessions.stop_session(tenant, parked.id, TEST_ACTOR)
    _sync_through_worker(run_jobs)  # the sync learns the server's start timestamp

    sim.restart()
    assert {sim.session(s.external_name)["status"] for s in running} == {"STOPPED"}
    _sync_through_worker(run_jobs)

    for session in running:
        wait_for(lambda s=session: sim.session(s.external_name)["status"] == "WORKING")
    assert sim.session(parked.external_name)["status"] == "STOPPED"
    _sync_through_worker(run_jobs)
    assert {_row(s.id).status for s in running} == {"WORKING"}
    assert _row(parked.id).status == "STOPPED"


def test_sessions_lost_by_waha_are_created_again_from_the_stored_config(tenant, sim, run_jobs):
    session = working_session(tenant, sim, "Wiped")
    sim.restart(wipe=True)
    assert sim.session(session.external_name) is None
    _sync_through_worker(run_jobs)
    recreated = wait_for(lambda: sim.session(session.external_name))
    assert recreated["config"]["metadata"]["portal.session_id"] == session.id
    assert recreated["config"]["webhooks"][0]["hmac"]["key"] == session.hmac_key
    wait_for(lambda: sim.session(session.external_name)["status"] == "SCAN_QR_CODE")  # the login was lost too
