"""The forwarding drain: batches over kept-alive connections, the destination policy on every attempt (reused
connections too), retries at their due time, and a worker killed mid-batch (at least once, duplicates bounded)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from portal.extensions import db
from portal.models import WebhookDelivery
from portal.services import forwarding
from portal.services.forwarding.drain import DEFAULT_ENDPOINT_CONCURRENCY
from tests.builders import TEST_ACTOR, envelope, inbound_payload, new_session, post_events
from tests.helpers import wait_for


def _attempts(endpoint_id: int) -> list[WebhookDelivery]:
    db.session.expire_all()
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id).order_by(WebhookDelivery.id)
    return list(db.session.scalars(stmt))


def _test_events(tenant: Any, endpoint_id: int, count: int) -> None:
    for _ in range(count):
        forwarding.send_test_event(tenant, endpoint_id, TEST_ACTOR)


def test_a_batch_of_events_goes_out_once_each_signed_over_kept_alive_connections(client, tenant, receiver, run_jobs):
    endpoint, secret = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["message"])
    session = new_session(tenant, "Support")
    payloads = [inbound_payload(f"batch {n}") for n in range(60)]
    post_events(client, session, [envelope(session, "message", p) for p in payloads])
    run_jobs()

    attempts = _attempts(endpoint.id)
    assert len(attempts) == 60 and {a.status for a in attempts} == {"succeeded"}
    assert all(a.sent_at is not None and a.leased_until is None for a in attempts)
    verifier = Webhook(secret)
    bodies = [verifier.verify(r["body"], r["headers"]) for r in receiver.requests]
    assert sorted(b["payload"]["body"] for b in bodies) == sorted(p["body"] for p in payloads)
    assert Counter(r["headers"]["Webhook-Id"] for r in receiver.requests) == Counter({a.msg_id: 1 for a in attempts})
    # at most WEBHOOK_ENDPOINT_CONCURRENCY connections at once, each kept for the following attempts
    connections = {r["connection"] for r in receiver.requests}
    assert len(connections) <= DEFAULT_ENDPOINT_CONCURRENCY < len(receiver.requests)


def test_a_kept_alive_connection_is_not_used_for_an_attempt_the_policy_refuses(app, tenant, receiver, run_jobs):
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["*"])
    _test_events(tenant, endpoint.id, 3)
    run_jobs()
    assert len(receiver.requests) == 3  # the sending threads now hold open connections to the receiver
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    try:
        _test_events(tenant, endpoint.id, 2)
        run_jobs()
    finally:
        app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    refused = _attempts(endpoint.id)[3:]
    assert [a.status for a in refused] == ["dead", "dead"]
    assert all("non-public address" in a.error and a.sent_at is None for a in refused)
    assert len(receiver.requests) == 3


def test_every_batch_checks_the_name_again_and_connects_only_to_what_passed(tenant, receiver, run_jobs, hosts):
    answers = iter([["127.0.0.1"], ["127.0.0.1"]])  # the create check and the first batch
    hosts["hooks.test"] = lambda: next(answers, ["127.0.0.2"])  # then the name points elsewhere (nothing there)
    url = receiver.url.replace("127.0.0.1", "hooks.test")
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=url, events=["*"])
    _test_events(tenant, endpoint.id, 4)
    run_jobs()
    assert len(receiver.requests) == 4
    _test_events(tenant, endpoint.id, 1)
    run_jobs()
    last = _attempts(endpoint.id)[4]
    # the open connection to 127.0.0.1 is not reused: the attempt went to the address the new check passed
    assert last.status == "failed" and last.error.startswith("could not connect")
    assert len(receiver.requests) == 4


def test_a_retry_due_within_the_idle_wait_goes_out_in_the_same_drain_not_before_its_time(
    app, client, tenant, receiver, run_jobs
):
    app.config["WEBHOOK_RETRY_BASE_SECONDS"] = 0.4
    try:
        endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["message"])
        session = new_session(tenant, "Support")
        receiver.statuses = [503]
        post_events(client, session, envelope(session, "message", inbound_payload()))
        run_jobs()
    finally:
        app.config.pop("WEBHOOK_RETRY_BASE_SECONDS")
    first, second = _attempts(endpoint.id)
    assert (first.status, second.status) == ("failed", "succeeded")
    spacing = (second.sent_at - first.sent_at).total_seconds() - first.duration_ms / 1000
    assert spacing >= 0.4  # never early
    assert second.sent_at >= second.due_at
    assert receiver.requests[1]["at"] - receiver.requests[0]["at"] >= 0.4


_DRAIN_IN_A_WORKER = """
from portal import create_app
from portal.config import environ_for_tests
from portal.services import forwarding
from portal.services.forwarding.drain import DEFAULT_ENDPOINT_CONCURRENCY
app = create_app(environ_for_tests())
with app.app_context():
    forwarding.drain()                    # killed while its first attempts wait for the slow endpoint
"""


def test_worker_killed_mid_batch_sends_only_its_unrecorded_attempts_again_after_the_lease(
    app, tenant, receiver, run_jobs
):
    endpoint, secret = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["*"])
    _test_events(tenant, endpoint.id, 40)
    receiver.delay = 3.0
    worker = subprocess.Popen(
        [sys.executable, "-c", _DRAIN_IN_A_WORKER], env=dict(os.environ, PYTHONPATH=os.getcwd()), start_new_session=True
    )
    try:
        assert wait_for(lambda: len(receiver.requests) >= 8, timeout=20)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    in_flight = {r["headers"]["Webhook-Id"] for r in receiver.requests}
    receiver.delay = 0.0
    # The dead worker's claim holds every row it took: nothing goes out twice before its lease ends.
    run_jobs()
    assert forwarding.dispatch_due() == 0 and len(receiver.requests) == len(in_flight)
    attempts = _attempts(endpoint.id)
    assert {a.status for a in attempts} == {"pending"} and all(a.leased_until for a in attempts)
    # The lease runs out (time passes): the rows are claimed again, each one sent and recorded once.
    db.session.execute(sa.text("UPDATE webhook_deliveries SET leased_until = now() - interval '1 second'"))
    db.session.commit()
    assert forwarding.dispatch_due() == 40
    run_jobs()

    attempts = _attempts(endpoint.id)
    assert len(attempts) == 40 and {(a.attempt, a.status) for a in attempts} == {(1, "succeeded")}
    sent = Counter(r["headers"]["Webhook-Id"] for r in receiver.requests)
    assert set(sent) == {a.msg_id for a in attempts}  # none lost
    assert {msg_id for msg_id, n in sent.items() if n > 1} == in_flight  # only the unrecorded ones went twice
    assert max(sent.values()) == 2
    verifier = Webhook(secret)
    for request in receiver.requests:
        verifier.verify(request["body"], request["headers"])


@pytest.mark.parametrize("status", ["succeeded", "dead"])
def test_deliver_sends_one_pending_attempt_and_skips_a_settled_one(tenant, receiver, status):
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["*"])
    delivery = forwarding.send_test_event(tenant, endpoint.id, TEST_ACTOR)
    if status == "dead":
        receiver.statuses = [400]
        delivery_row = db.session.get(WebhookDelivery, delivery.id)
        delivery_row.attempt = 99  # the last retry
        db.session.commit()
    assert forwarding.deliver(delivery.id) == status
    assert forwarding.deliver(delivery.id) == "skipped"
    assert len(receiver.requests) == 1


def test_one_drain_waits_for_the_next_attempt_and_another_ends_at_once_leaving_a_wake_up(tenant, receiver):
    from rq import Queue

    from portal.extensions import redis_store
    from portal.models import utcnow
    from portal.services.forwarding.drain import WAITER_LOCK

    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["*"])
    delivery = forwarding.send_test_event(tenant, endpoint.id, TEST_ACTOR)
    row = db.session.get(WebhookDelivery, delivery.id)
    row.due_at = utcnow() + timedelta(seconds=1.5)
    db.session.commit()

    redis_store.client.set(WAITER_LOCK, "another drain", px=10_000)  # a drain already waits for that attempt
    started = time.monotonic()
    forwarding.drain()
    assert time.monotonic() - started < 1.0  # it did not keep its worker idle too
    assert _attempts(endpoint.id)[0].status == "pending" and receiver.requests == []
    scheduled = Queue("forwarding", connection=redis_store.client).scheduled_job_registry.get_job_ids()
    assert any(job_id.startswith("forwarding-wake-") for job_id in scheduled)  # in case that drain died

    redis_store.client.delete(WAITER_LOCK)  # no drain waits now: this one does, and sends it on time
    forwarding.drain()
    sent = _attempts(endpoint.id)[0]
    assert sent.status == "succeeded" and sent.sent_at >= sent.due_at
    assert len(receiver.requests) == 1


def test_the_waiting_drain_sends_an_attempt_that_falls_due_before_the_one_it_waits_for(app, tenant, receiver):
    import threading

    from portal.models import utcnow

    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["*"])
    later = forwarding.send_test_event(tenant, endpoint.id, TEST_ACTOR)
    db.session.get(WebhookDelivery, later.id).due_at = utcnow() + timedelta(seconds=1.8)
    db.session.commit()

    def drain() -> None:
        with app.app_context():
            forwarding.drain()

    waiting = threading.Thread(target=drain)
    waiting.start()
    time.sleep(0.3)  # the drain now waits for `later`; a retry scheduled meanwhile falls due sooner
    sooner = forwarding.send_test_event(tenant, endpoint.id, TEST_ACTOR)
    sooner_row = db.session.get(WebhookDelivery, sooner.id)
    sooner_row.due_at = utcnow() + timedelta(seconds=0.4)
    db.session.commit()
    waiting.join(timeout=10)

    by_id = {a.id: a for a in _attempts(endpoint.id)}
    assert by_id[sooner.id].status == by_id[later.id].status == "succeeded"
    assert by_id[sooner.id].due_at <= by_id[sooner.id].sent_at < by_id[later.id].due_at
