"""The client against wahasim over loopback: the whole session and messaging flow, and retries that stay safe."""

from __future__ import annotations

import base64
import socket

import pytest

from portal.waha import errors
from tests.builders import wait_for_status

PHONE = "491701234567"
CUSTOMER = "4915112345678@c.us"


@pytest.fixture
def working(live_sim, live_client) -> str:
    """A session that was created, scanned and is WORKING."""
    live_client.create_session("tenant_1", {"metadata": {"tenant.id": "t_1"}}, start=True)
    wait_for_status(live_client, "tenant_1", "SCAN_QR_CODE")
    live_sim.scan("tenant_1", phone=PHONE)
    wait_for_status(live_client, "tenant_1", "WORKING")
    return "tenant_1"


def test_create_then_qr_shows_png(live_client):
    live_client.create_session("tenant_1", None, start=True)
    wait_for_status(live_client, "tenant_1", "SCAN_QR_CODE")

    qr = live_client.get_qr("tenant_1")

    assert qr["mimetype"] == "image/png"
    assert base64.b64decode(qr["data"]).startswith(b"\x89PNG")


def test_create_without_start_leaves_session_stopped(live_client):
    info = live_client.create_session("tenant_1", None, start=False)

    assert info["status"] == "STOPPED"


def test_scan_makes_session_working_with_me(working, live_client):
    assert live_client.get_me(working)["id"] == f"{PHONE}@c.us"


def test_create_twice_raises_already_exists(working, live_client):
    with pytest.raises(errors.WahaAlreadyExists):
        live_client.create_session(working, None)


def test_send_before_scan_raises_session_not_ready(live_client):
    live_client.create_session("tenant_1", None, start=True)
    wait_for_status(live_client, "tenant_1", "SCAN_QR_CODE")

    with pytest.raises(errors.WahaSessionNotReady) as caught:
        live_client.send_text("tenant_1", CUSTOMER, "too early")

    assert caught.value.session_status == "SCAN_QR_CODE"


def test_send_text_reaches_the_chat_once(working, live_sim, live_client):
    result = live_client.send_text(working, "+49 151 12345678", "Termin bestätigt", message_id="3EB0000000000000BEEF")

    sent = live_sim.sent_messages(working)
    assert [(m["chatId"], m["body"]) for m in sent] == [(CUSTOMER, "Termin bestätigt")]
    assert result.message_id == sent[0]["id"] == f"true_{CUSTOMER}_3EB0000000000000BEEF"


@pytest.mark.parametrize("engine", ["GOWS", "NOWEB", "WEBJS"])
def test_send_result_id_matches_waha_id_on_every_engine(make_client, engine):
    from wahasim.testing import SimServer

    with SimServer(api_key="sim-key", engine=engine, starting_delay=0.01) as server:
        engine_client = make_client(base_url=server.url, api_key=server.api_key)
        engine_client.create_session("s1", None, start=True)
        wait_for_status(engine_client, "s1", "SCAN_QR_CODE")
        server.scan("s1")
        wait_for_status(engine_client, "s1", "WORKING")

        result = engine_client.send_text("s1", CUSTOMER, "hi")

        assert result.message_id == server.sent_messages("s1")[0]["id"]


@pytest.mark.parametrize("failure", [503, 0], ids=["503", "dropped-connection"])
def test_send_retried_after_failure_reaches_the_chat_once(working, live_sim, live_client, failure):
    live_sim.fail_next(1, failure)

    result = live_client.send_text(working, CUSTOMER, "hello once")

    sent = live_sim.sent_messages(working)
    assert [m["body"] for m in sent] == ["hello once"]
    assert result.message_id == sent[0]["id"]


def test_send_repeated_with_same_id_is_one_message(working, live_sim, live_client):
    # What a retry after a lost answer looks like to WAHA: the same body with the same id, twice.
    first = live_client.send_text(working, CUSTOMER, "only once", message_id="3EB0000000000000CAFE")
    second = live_client.send_text(working, CUSTOMER, "only once", message_id="3EB0000000000000CAFE")

    assert len(live_sim.sent_messages(working)) == 1
    assert first.message_id == second.message_id


def test_send_image_by_base64_reaches_the_chat(working, live_sim, live_client):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()

    live_client.send_image(working, CUSTOMER, {"mimetype": "image/png", "filename": "a.png", "data": png}, caption="x")

    assert [m["kind"] for m in live_sim.sent_messages(working)] == ["image"]


def test_download_media_of_inbound_message(working, live_sim, live_client):
    message_id = live_sim.inbound(working, from_="491709999999", text="photo", media={"mimetype": "image/png"})
    event = next(e for e in live_sim.events() if e["event"] == "message" and e["payload"]["id"] == message_id)

    content, content_type = live_client.download_media(event["payload"]["media"]["url"])

    assert content.startswith(b"\x89PNG") and content_type == "image/png"


def test_check_number_finds_registered_number(working, live_client):
    result = live_client.check_number(working, "+49 151 12345678")

    assert result["numberExists"] is True


def test_list_and_delete_session(working, live_client):
    assert [s["name"] for s in live_client.list_sessions()] == [working]

    live_client.delete_session(working)

    assert live_client.list_sessions() == []


def test_stop_then_start_session(working, live_client):
    assert live_client.stop_session(working)["status"] == "STOPPED"

    live_client.start_session(working)

    assert wait_for_status(live_client, working, "WORKING")["status"] == "WORKING"


def test_wrong_api_key_raises_unauthorized(make_client, live_sim):
    stranger = make_client(base_url=live_sim.url, api_key="wrong-key")

    with pytest.raises(errors.WahaUnauthorized):
        stranger.list_sessions()


def test_ping_and_version(live_client):
    assert live_client.ping() is True
    assert live_client.version()["version"]


def test_slow_server_raises_timeout(make_client, live_sim):
    impatient = make_client(base_url=live_sim.url, api_key=live_sim.api_key, timeout_ms=100, retry_attempts=0)
    live_sim.set_latency(500)

    with pytest.raises(errors.WahaTimeout):
        impatient.list_sessions()


def test_unreachable_server_trips_the_breaker(make_client):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    fragile = make_client(base_url=f"http://127.0.0.1:{closed_port}", retry_attempts=0, breaker_fail_max=2)
    for _ in range(2):
        with pytest.raises(errors.WahaUnavailable):
            fragile.list_sessions()

    with pytest.raises(errors.WahaCircuitOpen):
        fragile.list_sessions()
