"""A retried send is never lost and never duplicated: what a 503 and a timeout leave behind, what a retry with the
same Idempotency-Key does, and how acks and the reconcile job settle a send whose outcome was unknown. End to end
against the simulator over loopback (its latency and failure knobs play the failing WAHA)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Message, WahaServer, utcnow
from portal.services import outbox
from portal.waha.client import close_all_clients
from tests.helpers import Api, closed_port, wait_for

TO = "+491701234567"
CHAT = "491701234567@c.us"


def _send(api: Api, session: dict[str, Any], text: str, key: str) -> Any:
    return api.post(
        f"/waha/sessions/{session['id']}/send", json={"to": TO, "text": text}, headers={"Idempotency-Key": key}
    )


def _row(message_id: int) -> Message:
    db.session.rollback()  # a fresh snapshot: requests commit on their own
    return db.session.get(Message, message_id)


@pytest.fixture
def waha_moved(app: Any, sim: Any) -> Iterator[Any]:
    """Point the WAHA server row at a port nobody listens on (connection refused) until `back()` is called."""
    server = db.session.scalars(select(WahaServer)).one()
    dead = f"http://127.0.0.1:{closed_port()}"

    def back() -> None:
        db.session.rollback()
        db.session.get(WahaServer, server.id).base_url = sim.url
        db.session.commit()

    server.base_url = dead
    db.session.commit()
    back.dead = dead
    yield back
    back()


@pytest.fixture
def short_waha_timeout(app: Any) -> Iterator[int]:
    """WAHA_TIMEOUT of 400 ms, so a slow simulator times the portal out quickly (clients rebuilt around it)."""
    before = app.config["WAHA_TIMEOUT"]
    app.config["WAHA_TIMEOUT"] = 400
    close_all_clients()
    yield 400
    app.config["WAHA_TIMEOUT"] = before
    close_all_clients()


def _slow_send(api: Api, sim: Any, session: dict[str, Any], text: str, key: str) -> Any:
    """A send that times out while the simulator, slower than the timeout, still delivers it."""
    sim.set_latency(900)
    try:
        response = _send(api, session, text, key)
    finally:
        sim.set_latency(0)
    return response


# ---- provably not sent: the retry sends ---------------------------------------------------------------------


def test_retry_after_connection_refused_sends_the_message(api, sim, working_session, waha_moved):
    first = _send(api, working_session, "Your order shipped", "order-1")

    assert first.status_code == 503, first.get_json()
    error = first.get_json()["error"]
    assert error["code"] == "waha_unavailable"
    assert error["details"]["outcome"] == "unsent" and error["details"]["reason"] == "unreachable"
    row = _row(error["details"]["messageId"])
    assert (row.status, row.send_state) == ("ERROR", "unsent")
    assert sim.sent_messages(working_session["externalSessionId"]) == []

    waha_moved()
    again = _send(api, working_session, "Your order shipped", "order-1")

    assert again.status_code == 200, again.get_json()
    body = again.get_json()
    assert body["id"] == row.id and body["status"] != "ERROR" and body["error"] is None
    [sent] = sim.sent_messages(working_session["externalSessionId"])
    assert (sent["id"], sent["body"]) == (body["messageId"], "Your order shipped")
    assert _send(api, working_session, "Your order shipped", "order-1").get_json()["id"] == row.id
    assert len(sim.sent_messages(working_session["externalSessionId"])) == 1


def test_retry_after_waha_answered_503_sends_the_message(api, sim, working_session):
    sim.fail_next(5, 503)
    first = _send(api, working_session, "Hello", "k-503")
    sim.fail_next(0)

    assert first.status_code == 503 and first.get_json()["error"]["details"]["outcome"] == "unsent"
    again = _send(api, working_session, "Hello", "k-503")

    assert again.status_code == 200 and again.get_json()["status"] != "ERROR"
    assert [m["body"] for m in sim.sent_messages(working_session["externalSessionId"])] == ["Hello"]


def test_retry_after_open_breaker_sends_the_message(api, sim, tenant, working_session, waha_moved):
    tenant.send_rate_per_minute = 6000  # room for the burst: pacing is not what this test is about
    db.session.commit()
    # Refused calls open the breaker; the next send fails at once, without a byte leaving.
    for attempt in range(3):
        _send(api, working_session, "warm-up", f"warm-{attempt}")
    paused = _send(api, working_session, "Paused", "k-breaker")
    details = paused.get_json()["error"]["details"]
    assert (details["reason"], details["outcome"]) == ("circuit_open", "unsent")

    waha_moved()
    again = _send(api, working_session, "Paused", "k-breaker")

    assert again.status_code == 200 and again.get_json()["status"] != "ERROR"
    assert [m["body"] for m in sim.sent_messages(working_session["externalSessionId"])] == ["Paused"]


# ---- outcome unknown: never final, settled, resent under the same id --------------------------------------


def test_timed_out_send_stays_pending_and_the_acks_settle_it(
    api, sim, live_server, run_jobs, short_waha_timeout, working_session_live
):
    session = working_session_live
    response = _slow_send(api, sim, session, "Slow but sent", "slow-1")

    assert response.status_code == 503
    details = response.get_json()["error"]["details"]
    assert (details["outcome"], details["reason"]) == ("unknown", "timeout")
    [sent] = wait_for(lambda: sim.sent_messages(session["externalSessionId"]), timeout=5)

    def acked() -> Any:
        run_jobs()
        row = _row(details["messageId"])
        return row if row.status in ("DEVICE", "READ") else None

    row = wait_for(acked, timeout=10, interval=0.1)
    assert row.waha_message_id == sent["id"] and row.error is None and row.failed_at is None
    again = _send(api, session, "Slow but sent", "slow-1")
    assert again.status_code == 200 and again.get_json()["id"] == row.id
    assert len(sim.sent_messages(session["externalSessionId"])) == 1


def test_retry_of_a_timed_out_send_resends_under_the_same_id_once(api, sim, short_waha_timeout, working_session):
    response = _slow_send(api, sim, working_session, "Exactly once", "once-1")
    details = response.get_json()["error"]["details"]
    assert details["outcome"] == "unknown"
    row = _row(details["messageId"])
    assert (row.status, row.send_state, row.failed_at) == ("PENDING", "unknown", None)

    again = _send(api, working_session, "Exactly once", "once-1")

    assert again.status_code == 200, again.get_json()
    assert again.get_json()["id"] == row.id and again.get_json()["messageId"] == row.waha_message_id
    time.sleep(1.0)  # the simulator's delayed handling of the first call has run by now
    sent = sim.sent_messages(working_session["externalSessionId"])
    assert [(m["id"], m["body"]) for m in sent] == [(row.waha_message_id, "Exactly once")]
    assert _row(row.id).send_state is None


def test_reconcile_settles_a_timed_out_send_by_its_id(api, sim, short_waha_timeout, working_session):
    response = _slow_send(api, sim, working_session, "Find me", "find-1")
    message_id = response.get_json()["error"]["details"]["messageId"]
    wait_for(lambda: sim.sent_messages(working_session["externalSessionId"]), timeout=5)

    report = outbox.reconcile(now=utcnow() + timedelta(minutes=1))

    row = _row(message_id)
    assert (report.settled, row.send_state) == (1, None)
    assert row.status in ("SERVER", "DEVICE", "READ")  # the ack WAHA reports for it
    assert row.sent_at is not None and row.error is None


def test_reconcile_sends_a_text_whatsapp_never_saw_once(api, sim, working_session):
    sim.fail_next(5, 0)  # the connection drops after the request went out: WAHA never handled it
    response = _send(api, working_session, "Lost", "lost-1")
    sim.fail_next(0)
    details = response.get_json()["error"]["details"]
    assert details["outcome"] == "unknown"

    first = outbox.reconcile(now=utcnow() + timedelta(minutes=1))
    again = outbox.reconcile(now=utcnow() + timedelta(minutes=2))
    retried = _send(api, working_session, "Lost", "lost-1")  # the caller's retry with the same key

    row = _row(details["messageId"])
    [sent] = sim.sent_messages(working_session["externalSessionId"])
    assert (first.resent, again.resent, row.send_state, row.error) == (1, 0, None, None)
    assert sent["body"] == "Lost" and row.waha_message_id == sent["id"]
    assert retried.status_code == 200 and retried.get_json()["id"] == details["messageId"]


def test_a_send_whose_process_died_mid_call_still_goes_out(api, sim, working_session):
    """The web process died during its WAHA call: the row stays "sending", and a retry with the same key before
    it is stale answers the row (PENDING) without sending. The reconcile job finishes the send."""
    row_id = _send(api, working_session, "Pending", "died-1").get_json()["id"]
    message = _row(row_id)
    message.send_state, message.status = "sending", "PENDING"
    message.waha_message_id = f"true_{CHAT}_3EB0DEADBEEF00112233"  # an id WAHA was never asked to send
    db.session.commit()
    retried = _send(api, working_session, "Pending", "died-1")

    report = outbox.reconcile(now=utcnow() + outbox.STALE_SENDING + timedelta(minutes=1))

    assert retried.get_json()["status"] == "PENDING"
    assert report.resent == 1
    sent = [m for m in sim.sent_messages(working_session["externalSessionId"]) if m["id"] == message.waha_message_id]
    assert [m["body"] for m in sent] == ["Pending"]
    assert _row(row_id).send_state is None


def test_reconcile_gives_up_on_media_whatsapp_never_saw(api, sim, working_session):
    media = {"type": "document", "url": "https://example.com/invoice.pdf", "mimetype": "application/pdf"}
    sim.fail_next(5, 0)
    response = api.post(
        f"/waha/sessions/{working_session['id']}/send",
        json={"to": TO, "media": media},
        headers={"Idempotency-Key": "m"},
    )
    sim.fail_next(0)
    details = response.get_json()["error"]["details"]

    soon = outbox.reconcile(now=utcnow() + timedelta(minutes=1))
    assert (soon.open, soon.resent, _row(details["messageId"]).status) == (1, 0, "PENDING")
    late = outbox.reconcile(now=utcnow() + outbox.GIVE_UP_AFTER + timedelta(minutes=1))

    row = _row(details["messageId"])
    assert (late.failed, row.status, row.send_state, row.error) == (1, "ERROR", None, outbox.NOT_CONFIRMED)
    assert sim.sent_messages(working_session["externalSessionId"]) == []


def test_media_retry_of_a_timed_out_send_looks_it_up_instead_of_sending(api, sim, short_waha_timeout, working_session):
    media = {"type": "document", "url": "https://example.com/invoice.pdf", "mimetype": "application/pdf"}
    sim.set_latency(900)
    first = api.post(
        f"/waha/sessions/{working_session['id']}/send",
        json={"to": TO, "media": media},
        headers={"Idempotency-Key": "media-1"},
    )
    sim.set_latency(0)
    assert first.get_json()["error"]["details"]["outcome"] == "unknown"
    wait_for(lambda: sim.sent_messages(working_session["externalSessionId"]), timeout=5)

    again = api.post(
        f"/waha/sessions/{working_session['id']}/send",
        json={"to": TO, "media": media},
        headers={"Idempotency-Key": "media-1"},
    )

    assert again.status_code == 200 and again.get_json()["status"] in ("SERVER", "DEVICE", "READ")
    assert _row(again.get_json()["id"]).send_state is None
    assert len(sim.sent_messages(working_session["externalSessionId"])) == 1


# ---- what tenants see of WAHA's address ---------------------------------------------------------------------


def test_waha_failures_hide_the_waha_address_from_tenants_but_log_it(api, sim, working_session, waha_moved, caplog):
    dead = waha_moved.dead
    with caplog.at_level(logging.WARNING):
        sent = _send(api, working_session, "Hi", "addr-1")
        synced = api.post(f"/waha/sessions/{working_session['id']}/sync")

    host = dead.split("//", 1)[1]
    for response in (sent, synced):
        assert response.status_code == 503
        assert host not in response.get_data(as_text=True) and "127.0.0.1" not in response.get_data(as_text=True)
        assert response.get_json()["error"]["details"]["reason"] == "unreachable"
    row = _row(sent.get_json()["error"]["details"]["messageId"])
    assert row.error == "Not sent: WAHA could not be reached."
    listed = api.get(f"/waha/messages/{row.id}").get_data(as_text=True)
    assert "127.0.0.1" not in listed
    assert any(host in record.getMessage() for record in caplog.records)
