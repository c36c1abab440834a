"""What an integrator does with only the docs page: create a session, get its QR, send after the scan, read it
back, and see the delivery status move forward as WhatsApp acknowledges it."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.builders import wait_for_status
from tests.helpers import Api, wait_for


@pytest.mark.smoke
def test_integrator_creates_scans_sends_and_reads_back(api: Api, sim: Any) -> None:
    created = api.post("/waha/sessions", json={"sessionName": "shop"}, headers={"Idempotency-Key": "shop-1"})
    assert created.status_code == 201
    session = created.get_json()

    wait_for_status(api, session["id"], "SCAN_QR_CODE")
    qr = api.get(f"/waha/sessions/{session['id']}/qr")
    assert qr.status_code == 200
    assert base64.b64decode(qr.get_json()["data"]).startswith(b"\x89PNG")

    sim.scan(session["externalSessionId"])
    synced = api.post(f"/waha/sessions/{session['id']}/sync").get_json()
    assert synced["status"] == "WORKING"

    sent = api.post(
        f"/waha/sessions/{session['id']}/send",
        json={"to": "+49 170 1234567", "text": "Order shipped"},
        headers={"Idempotency-Key": "order-77"},
    )
    assert sent.status_code == 200
    message = sent.get_json()

    listed = api.get(f"/waha/sessions/{session['id']}/messages").get_json()["data"]
    assert [(m["id"], m["text"], m["to"]) for m in listed] == [(message["id"], "Order shipped", "491701234567@c.us")]
    read_back = api.get(f"/waha/messages/{message['id']}").get_json()
    assert read_back["messageId"] == message["messageId"]
    assert [m["body"] for m in sim.sent_messages(session["externalSessionId"])] == ["Order shipped"]


def test_integrator_sees_delivery_status_after_acks(
    api: Api, sim: Any, live_server: Any, run_jobs: Any, working_session_live: dict[str, Any]
) -> None:
    session = working_session_live
    message = api.post(
        f"/waha/sessions/{session['id']}/send", json={"to": "+491701234567", "text": "Track me"}
    ).get_json()
    sim.ack(session["externalSessionId"], message["messageId"], 3)

    def status() -> str:
        run_jobs()
        return api.get(f"/waha/messages/{message['id']}").get_json()["status"]

    wait_for(lambda: status() == "READ", timeout=10, interval=0.05)


def _inbound_rows(api: Api, session_id: str, run_jobs: Any, want: int = 1) -> list[dict[str, Any]]:
    def settled() -> list[dict[str, Any]] | None:
        run_jobs()
        rows = api.get(f"/waha/sessions/{session_id}/messages?direction=in").get_json()["data"]
        if len(rows) >= want and all(r["media"] is None or r["media"]["status"] != "pending" for r in rows):
            return rows
        return None

    return wait_for(settled, timeout=10, interval=0.05)


def test_integrator_reads_inbound_message(
    api: Api, sim: Any, live_server: Any, run_jobs: Any, working_session_live: dict[str, Any]
) -> None:
    sim.inbound(working_session_live["externalSessionId"], from_="491709999999", text="Where is my order?")
    rows = _inbound_rows(api, working_session_live["id"], run_jobs)
    assert [(r["direction"], r["chatId"], r["text"]) for r in rows] == [
        ("in", "491709999999@c.us", "Where is my order?")
    ]


def test_integrator_downloads_inbound_media(
    api: Api, sim: Any, live_server: Any, run_jobs: Any, working_session_live: dict[str, Any]
) -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    sim.inbound(
        working_session_live["externalSessionId"],
        text="photo",
        media={"data": base64.b64encode(png).decode(), "mimetype": "image/png", "filename": "p.png"},
    )
    rows = _inbound_rows(api, working_session_live["id"], run_jobs)
    media = rows[0]["media"]
    assert media["status"] == "stored"
    download = api.get(media["url"])
    assert download.status_code == 200
    assert download.mimetype == "image/png"
    assert download.get_data() == png
    assert download.headers["Content-Disposition"].startswith("attachment")
