"""Deleting sessions while a real worker applies their first events: no 500, no deadlock left to the caller,
nothing left behind on either side."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Message, WahaSession, WebhookDelivery, WebhookEvent
from portal.services import events
from tests.builders import make_tenant, make_token
from tests.helpers import wait_for

_WORKER = """
import sys
from portal import create_app
from portal.config import environ_for_tests
from portal.jobs import make_worker
app = create_app(environ_for_tests(WAHA_BASE_URL=sys.argv[1]))
with app.app_context():
    print("ready", flush=True)
    make_worker(["events", "forwarding"], simple=True).work(with_scheduler=False)
"""


def _count(model: Any, *where: Any) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_fifty_sessions_deleted_while_their_first_events_are_processed_leave_nothing(app, live_server, sim, receiver):
    with app.app_context():
        tenant = make_tenant("busy", name="Busy", max_sessions=60)
        token = make_token(tenant)
    headers = {"Authorization": f"Bearer {token}"}
    # a slow, failing endpoint: its delivery attempts hold their rows while a delete cascades to them, and each
    # failure adds the next attempt (which references the session)
    receiver.statuses, receiver.delay = [500] * 10000, 0.2
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, sim.url], stdout=subprocess.PIPE, env=env, start_new_session=True
    )
    answers: list[tuple[str, int, Any]] = []
    lock = threading.Lock()

    def create_and_delete(names: list[str]) -> None:
        client = app.test_client()
        for name in names:
            created = client.post(
                "/waha/sessions",
                headers=headers,
                json={"sessionName": name, "webhookUrl": receiver.url, "webhookEvents": ["*"]},
            )
            assert created.status_code == 201, created.get_json()
            session_id = created.get_json()["id"]
            time.sleep(random.uniform(0.0, 0.05))  # its first session.status events are on their way
            deleted = client.delete(f"/waha/sessions/{session_id}", headers=headers)
            with lock:
                answers.append((session_id, deleted.status_code, deleted.get_json(silent=True)))

    try:
        assert worker.stdout.readline().strip() == b"ready"
        names = [f"doomed-{n}" for n in range(50)]
        threads = [threading.Thread(target=create_and_delete, args=(names[i::5],)) for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with app.app_context():
            # the worker goes on with whatever arrived late; events that arrived during a delete have no session
            # any more and the sweeper closes them; then nothing is pending
            wait_for(
                lambda: (
                    _count(WebhookEvent, WebhookEvent.status == "pending", WebhookEvent.session_id.is_not(None)) == 0
                ),
                timeout=20,
            )
            events.sweep(older_than=0)
            assert _count(WebhookEvent, WebhookEvent.status == "pending") == 0
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)

    assert len(answers) == 50
    assert [a for a in answers if a[1] != 204] == []
    with app.app_context():
        assert _count(WahaSession) == 0
        assert _count(Message) == 0 and _count(WebhookDelivery) == 0
        assert _count(WebhookEvent, WebhookEvent.session_id.is_not(None)) == 0
        assert list(sim.simulator.sessions) == []  # nothing left on WAHA either
        client = app.test_client()
        assert {client.get(f"/waha/sessions/{sid}", headers=headers).status_code for sid, _s, _b in answers} == {404}


_CLAIM_THEN_APPLY = """
import sys
from portal import create_app
from portal.config import environ_for_tests
from portal.extensions import db
from portal.models import WahaSession
from portal.services import events
app = create_app(environ_for_tests(WAHA_BASE_URL=sys.argv[1]))
with app.app_context():
    claimed = events._claim(500, set())   # a worker's batch: the session's events, FOR UPDATE
    print(len(claimed), flush=True)
    sys.stdin.readline()                  # meanwhile the delete starts
    session = db.session.get(WahaSession, claimed[0].session_id)
    session.status = "WORKING"            # applying a session.status event writes the session row
    db.session.commit()
    print("committed", flush=True)
"""


def test_delete_while_a_worker_holds_the_sessions_events_waits_for_it_instead_of_deadlocking(app, tenant, sim):
    from portal.services import sessions
    from tests.builders import TEST_ACTOR, envelope, new_session, post_events

    session = new_session(tenant, "Claimed")
    external = session.external_name
    client = app.test_client()
    post_events(client, session, [envelope(session, "session.status", {"status": "WORKING"}) for _ in range(3)])
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    worker = subprocess.Popen(
        [sys.executable, "-c", _CLAIM_THEN_APPLY, sim.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    outcome: list[Any] = []

    def delete() -> None:
        with app.app_context():
            try:
                sessions.delete_session(tenant, session.id, TEST_ACTOR)
                outcome.append("deleted")
            except Exception as exc:  # what the API turned into a 500
                outcome.append(exc)

    try:
        assert worker.stdout.readline().strip() == b"3"
        thread = threading.Thread(target=delete)
        thread.start()
        time.sleep(0.5)  # the delete is waiting on the worker's locks now
        worker.stdin.write(b"go\n")
        worker.stdin.flush()
        thread.join(timeout=30)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert outcome == ["deleted"]
    assert _count(WahaSession) == 0 and sim.session(external) is None
