"""The send queue with real processes: a `flask worker` (RQ, with its scheduler) sends a scheduled message on
time; a dispatcher killed in the middle of its call to WAHA neither loses the message nor sends it twice; a
scheduled message held by a stopped session reaches the tenant's webhook endpoint as "message.scheduled_late"."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from rq import Worker
from sqlalchemy import func, select

from portal.extensions import db, redis_store
from portal.models import Message, QueuedSend, utcnow
from portal.services import forwarding, outreach, sessions
from portal.services.outreach.dispatch import STALE_SENDING
from portal.services.outreach.queue import LOCK_KEY
from tests.builders import TEST_ACTOR, wait_for_status
from tests.helpers import wait_for
from tests.jobs.conftest import Receiver

GROUP = "120363025246125486@g.us"  # a group: no check-exists call before the send


def _state(item_id: int) -> str:
    db.session.expire_all()
    return db.session.get(QueuedSend, item_id).state


@pytest.mark.timeout(120)
def test_a_worker_sends_a_scheduled_message_within_seconds_of_its_time(_environ, tenant, working, sim, arrivals):
    env = dict(os.environ, **_environ, WAHA_BASE_URL=sim.url, FLASK_APP="wsgi")
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "worker", "--queues", "outreach"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(Worker.all(connection=redis_store.client)) >= 1, timeout=30)
        send_at = utcnow() + timedelta(seconds=4)
        item = outreach.schedule_message(tenant, working.id, TEST_ACTOR, to=GROUP, text="on the dot", send_at=send_at)
        due = time.monotonic() + (send_at - utcnow()).total_seconds()

        wait_for(lambda: arrivals.times("/api/sendText"), timeout=20)
        late_by = arrivals.times("/api/sendText")[0] - due
        assert -0.05 <= late_by <= 5.0, late_by
        wait_for(lambda: _state(item.id) == "sent", timeout=10)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=15)
    assert [m["body"] for m in sim.sent_messages(working.external_name)] == ["on the dot"]


_DISPATCH = """
import sys
from portal import create_app
from portal.config import environ_for_tests
from portal.services import outreach
app = create_app(environ_for_tests(WAHA_BASE_URL=sys.argv[1]))
with app.app_context():
    outreach.run(sys.argv[2])
"""


@pytest.mark.parametrize("died", ["seconds ago", "long ago"])
@pytest.mark.timeout(120)
def test_a_dispatcher_killed_mid_send_loses_nothing_and_sends_once(tenant, working, sim, dispatch, died):
    item = outreach.enqueue(tenant, working.id, GROUP, body="exactly once", actor=TEST_ACTOR)
    sim.set_latency(3000)  # WAHA is slow: the dispatcher is killed while its call is under way
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    process = subprocess.Popen([sys.executable, "-c", _DISPATCH, sim.url, working.id], env=env, start_new_session=True)
    try:
        wait_for(
            lambda: db.session.scalar(select(Message).where(Message.idempotency_key == f"queue-{item.id}")),
            timeout=30,
        )
        time.sleep(0.3)  # the call to WAHA is on its way
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    sim.set_latency(0)
    assert _state(item.id) == "sending"
    wait_for(lambda: len(sim.sent_messages(working.external_name)) == 1, timeout=10)  # WhatsApp got it

    redis_store.client.delete(LOCK_KEY + working.id)  # the dead dispatcher's lock expires (here at once)
    if died == "long ago":
        # the send row looks abandoned too: the retry calls WAHA again, under the same WhatsApp id
        db.session.execute(
            Message.__table__.update()
            .where(Message.idempotency_key == f"queue-{item.id}")
            .values(updated_at=utcnow() - timedelta(minutes=5))
        )
        db.session.commit()
    assert outreach.sweep(now=utcnow() + STALE_SENDING + timedelta(seconds=1))["requeued"] == 1
    dispatch(working.id)

    row = db.session.get(QueuedSend, item.id)
    assert row.state == "sent" and row.attempts == 2
    assert [m["body"] for m in sim.sent_messages(working.external_name)] == ["exactly once"]
    assert db.session.scalar(select(func.count()).select_from(Message)) == 1
    assert db.session.get(Message, row.message_id).idempotency_key == f"queue-{item.id}"


@pytest.mark.timeout(60)
def test_a_late_scheduled_message_is_told_to_the_tenants_endpoint(tenant, working, sim, dispatch, run_jobs):
    receiver = Receiver()
    receiver.thread.start()
    try:
        forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["message.scheduled_late"])
        item = outreach.schedule_message(
            tenant, working.id, TEST_ACTOR, to=GROUP, text="held", send_at=utcnow() + timedelta(seconds=1)
        )
        sessions.stop_session(tenant, working.id, TEST_ACTOR)
        wait_for_status(tenant, working, "STOPPED")
        time.sleep(1.1)

        dispatch(working.id, nap_max=0)
        run_jobs()

        wait_for(lambda: receiver.requests, timeout=10)
        event = json.loads(receiver.requests[0]["body"])
        assert event["type"] == "message.scheduled_late"
        assert (event["payload"]["id"], event["payload"]["sessionStatus"]) == (item.id, "STOPPED")
        assert event["session"]["id"] == working.id
    finally:
        receiver.server.shutdown()
    assert sim.sent_messages(working.external_name) == []
