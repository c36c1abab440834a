"""Processing of stored events by a real RQ worker: idempotence, acks, statuses, edits, media, crash recovery."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Message, WahaSession, WebhookEvent
from portal.services import events, messages
from portal.storage import storage
from tests.builders import (
    TEST_ACTOR,
    ack_payload,
    envelope,
    inbound_payload,
    new_session,
    post_events,
    relay_inbound_media,
    working_session,
)
from tests.helpers import wait_for


@pytest.fixture
def session(tenant: Any) -> Any:
    return new_session(tenant, "Support")


def _message(waha_id: str) -> Message | None:
    db.session.expire_all()
    return db.session.scalar(select(Message).where(Message.waha_message_id == waha_id))


def _count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _event(event_id: str) -> WebhookEvent:
    db.session.expire_all()
    return db.session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == event_id))


@pytest.mark.smoke
def test_same_event_delivered_twice_is_processed_once(client, session, run_jobs):
    body = envelope(session, "message", inbound_payload("only once"))
    post_events(client, session, body)
    run_jobs()
    post_events(client, session, body)  # WAHA retried after our answer got lost
    run_jobs()
    assert _count(Message) == 1
    assert _event(body["id"]).status == "done"


def test_message_and_message_any_of_one_message_make_one_row(client, session, run_jobs):
    payload = inbound_payload("hello there")
    post_events(client, session, [envelope(session, "message", payload), envelope(session, "message.any", payload)])
    run_jobs()
    message = _message(payload["id"])
    assert _count(Message) == 1
    assert (message.direction, message.source, message.body, message.chat_id, message.from_me) == (
        "in",
        "inbound",
        "hello there",
        "491709999999@c.us",
        False,
    )
    assert message.tenant_id == session.tenant_id and message.session_id == session.id


@pytest.mark.smoke
def test_ack_before_its_message_creates_a_placeholder_the_message_fills(client, session, run_jobs):
    payload = inbound_payload("late message")
    ack = envelope(session, "message.ack", ack_payload(payload["id"], 3))
    post_events(client, session, ack)
    run_jobs()
    placeholder = _message(payload["id"])
    assert placeholder.status == "READ" and placeholder.body is None and placeholder.read_at is not None

    post_events(client, session, envelope(session, "message", payload))
    run_jobs()
    message = _message(payload["id"])
    assert _count(Message) == 1
    assert (message.body, message.status) == ("late message", "READ")  # the message's own DEVICE is older news
    assert "placeholder" not in message.extra


def test_acks_move_status_forward_only_and_stamp_each_step(client, session, run_jobs):
    base = (int(time.time()) - 600) * 1000  # inside the receiver's replay window
    payload = {**inbound_payload("tick tick"), "ack": 1, "ackName": "SERVER"}
    post_events(client, session, envelope(session, "message", payload, timestamp=base))
    post_events(
        client, session, envelope(session, "message.ack", ack_payload(payload["id"], 3), timestamp=base + 60_000)
    )
    post_events(
        client, session, envelope(session, "message.ack", ack_payload(payload["id"], 2), timestamp=base + 30_000)
    )  # overtaken on the way
    run_jobs()
    message = _message(payload["id"])
    assert message.status == "READ"
    assert message.read_at.timestamp() == (base + 60_000) / 1000
    assert message.delivered_at.timestamp() == (base + 30_000) / 1000
    assert message.server_at.timestamp() == base / 1000


def test_message_any_of_a_message_sent_through_the_portal_updates_its_row(client, tenant, sim, run_jobs):
    session = working_session(tenant, sim, "Sales")
    sent = messages.send_message(tenant, session.id, TEST_ACTOR, to="+49 170 5555555", text="from the portal")
    own = {
        **inbound_payload("from the portal"),
        "id": sent.waha_message_id,
        "fromMe": True,
        "source": "api",
        "from": "491705555555@c.us",
        "ack": 1,
        "ackName": "SERVER",
    }
    post_events(client, session, envelope(session, "message.any", own))
    run_jobs()
    assert _count(Message) == 1
    message = _message(sent.waha_message_id)
    assert (message.id, message.source, message.direction, message.status) == (sent.id, "api", "out", "SERVER")


def test_message_sent_from_the_phone_is_stored_as_outbound_from_app(client, session, run_jobs):
    own = {
        **inbound_payload("typed on the phone"),
        "id": "true_491705555555@c.us_3EB0PHONE00000001",
        "fromMe": True,
        "source": "app",
        "from": "491705555555@c.us",
        "ack": 1,
    }
    post_events(client, session, envelope(session, "message.any", own))
    run_jobs()
    message = _message(own["id"])
    assert (message.direction, message.source, message.from_me, message.chat_id) == (
        "out",
        "app",
        True,
        "491705555555@c.us",
    )
    assert message.sent_at is not None


@pytest.mark.smoke
def test_session_status_event_updates_status_me_and_audit(client, session, run_jobs):
    me = {"id": "491701234567@c.us", "pushName": "Acme"}
    post_events(
        client,
        session,
        envelope(session, "session.status", {"name": session.external_name, "status": "WORKING"}, me=me),
    )
    run_jobs()
    db.session.expire_all()
    row = db.session.get(WahaSession, session.id)
    assert (row.status, row.me) == ("WORKING", me)
    assert row.last_event_at is not None
    audit = db.session.scalar(
        select(AuditEvent).where(
            AuditEvent.action == "session.status", AuditEvent.target_id == session.id, AuditEvent.actor_type == "waha"
        )
    )
    assert audit.details["to"] == "WORKING"


def test_status_events_of_one_session_apply_in_arrival_order(client, session, run_jobs):
    statuses = ["STARTING", "SCAN_QR_CODE", "WORKING", "FAILED", "STARTING", "WORKING"]
    post_events(client, session, [envelope(session, "session.status", {"name": "x", "status": s}) for s in statuses])
    run_jobs()
    db.session.expire_all()
    assert db.session.get(WahaSession, session.id).status == "WORKING"


def test_reaction_edit_and_revoke_are_recorded_on_their_message(client, session, run_jobs):
    payload = inbound_payload("original text")
    post_events(client, session, envelope(session, "message", payload))
    wa_id = payload["id"].rsplit("_", 1)[1]
    head = {"id": "false_491709999999@c.us_R1", "timestamp": 1, "from": "491709999999@c.us", "fromMe": False}
    post_events(
        client,
        session,
        [
            envelope(session, "message.reaction", {**head, "reaction": {"text": "👍", "messageId": payload["id"]}}),
            envelope(session, "message.edited", {**head, "body": "edited text", "editedMessageId": payload["id"]}),
            envelope(session, "message.revoked", {"after": head, "before": None, "revokedMessageId": wa_id}),
        ],
    )
    run_jobs()
    message = _message(payload["id"])
    assert message.reactions["491709999999@c.us"]["text"] == "👍"
    assert (message.body, message.extra["original_body"]) == ("edited text", "original text")
    assert message.edited_at is not None and message.revoked_at is not None


def test_removed_reaction_is_dropped(client, session, run_jobs):
    payload = inbound_payload("react to me")
    head = {"id": "false_491709999999@c.us_R2", "from": "491709999999@c.us", "fromMe": False}
    post_events(
        client,
        session,
        [
            envelope(session, "message", payload),
            envelope(session, "message.reaction", {**head, "reaction": {"text": "❤", "messageId": payload["id"]}}),
            envelope(session, "message.reaction", {**head, "reaction": {"text": "", "messageId": payload["id"]}}),
        ],
    )
    run_jobs()
    assert _message(payload["id"]).reactions is None


def test_other_events_are_stored_and_marked_done(client, session, run_jobs):
    body = envelope(session, "presence.update", {"id": "491709999999@c.us", "presences": []})
    post_events(client, session, body)
    run_jobs()
    assert _event(body["id"]).status == "done"


def test_malformed_message_event_is_marked_failed_and_others_still_apply(client, session, run_jobs):
    good = inbound_payload("fine")
    bad = envelope(session, "message", {"body": "no id"})
    post_events(client, session, [bad, envelope(session, "message", good)])
    run_jobs()
    assert _event(bad["id"]).status == "failed"
    assert _message(good["id"]) is not None


def test_inbound_media_is_downloaded_into_portal_storage(app, client, tenant, sim, run_jobs, media_backend):
    session = working_session(tenant, sim, "Media")
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    message_id = relay_inbound_media(client, sim, session, png)
    run_jobs()  # the drain job queues the download job; the same burst runs it
    message = _message(message_id)
    assert message.media["status"] == "stored" and message.media["size"] == len(png)
    handle, mimetype, filename = events.media_for_message(tenant, message.id)
    with handle:
        assert handle.read() == png
    assert mimetype == "image/png" and filename.endswith(".png")
    # a fresh random key under the tenant's prefix: no session, message id or sender's file name in it
    assert re.fullmatch(rf"t/{tenant.id}/m/[0-9a-f]{{32}}\.png", message.media["key"])
    assert storage().size(message.media["key"]) == len(png)
    storage().delete(message.media["key"])


def test_inbound_media_of_a_refused_type_is_not_downloaded(client, session, run_jobs):
    payload = inbound_payload(
        "setup.exe",
        media={
            "url": "http://127.0.0.1:9/api/files/x/y.exe",
            "mimetype": "application/x-msdownload",
            "filename": "setup.exe",
            "error": None,
        },
    )
    post_events(client, session, envelope(session, "message", payload))
    run_jobs()
    assert _message(payload["id"]).media["status"] == "refused"


_CLAIM_AND_HANG = """
import sys, time
from portal import create_app
from portal.config import environ_for_tests
from portal.extensions import db
from portal.services import events
app = create_app(environ_for_tests(WAHA_BASE_URL=sys.argv[1]))
with app.app_context():
    claimed = events._claim(500, set())   # what a worker does first, inside its transaction
    print(len(claimed), flush=True)
    time.sleep(60)                        # killed here, mid-batch
"""


def test_worker_killed_mid_batch_leaves_events_pending_and_sweeper_gets_them_processed(
    app, client, session, sim, run_jobs
):
    payloads = [inbound_payload(f"survives {n}") for n in range(3)]
    post_events(client, session, [envelope(session, "message", p) for p in payloads])
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    worker = subprocess.Popen(
        [sys.executable, "-c", _CLAIM_AND_HANG, sim.url], stdout=subprocess.PIPE, env=env, start_new_session=True
    )
    try:
        assert worker.stdout.readline().strip() == b"3"
        run_jobs()  # the queued drain job finds the rows claimed by the other worker and leaves them
        assert _count(Message) == 0
        assert {_event_status(p["id"]) for p in payloads} == {"pending"}
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    # PostgreSQL notices the dropped connection and rolls the dead worker's transaction back.
    assert wait_for(lambda: events.sweep(older_than=0) == 3)
    run_jobs()
    assert _count(Message) == 3
    assert {_event_status(p["id"]) for p in payloads} == {"done"}


def _event_status(message_id: str) -> str:
    db.session.expire_all()
    return db.session.scalar(
        select(WebhookEvent.status).where(WebhookEvent.payload["payload"]["id"].as_string() == message_id)
    )
