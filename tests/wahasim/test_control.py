"""The /_sim control surface and the SimServer helper."""

from __future__ import annotations

import time

import pytest
import requests

from tests.helpers import wait_for as wait_until
from wahasim.errors import ControlError

TEXT = {"session": "default", "chatId": "4915112345678@c.us", "text": "Hallo"}


def control(server, path, json=None, method="POST"):
    return requests.request(method, server.url + "/_sim" + path, json=json, timeout=5)


def test_scan_endpoint_pairs_with_given_phone(api, server):
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    response = control(server, "/sessions/default/scan", {"phone": "491705555555", "pushName": "Praxis"})
    assert response.status_code == 200
    assert response.json()["me"] == {"id": "491705555555@c.us", "pushName": "Praxis"}


def test_scan_during_starting_shows_qr_then_works(api, server):
    api.create("default", start=True)
    server.scan("default")
    statuses = [e["payload"]["status"] for e in server.events() if e["event"] == "session.status"]
    assert statuses == ["STARTING", "SCAN_QR_CODE", "WORKING"]


def test_scan_of_stopped_session_answers_409(api, server):
    api.create("default", start=False)
    assert control(server, "/sessions/default/scan").status_code == 409


def test_control_on_unknown_session_answers_404(server):
    assert control(server, "/sessions/ghost/fail").status_code == 404


def test_fail_endpoint_sets_failed(api, server):
    api.create("default", start=True)
    assert control(server, "/sessions/default/fail").json()["status"] == "FAILED"


def test_inbound_endpoint_returns_message_id(api, server):
    api.working("default")
    response = control(server, "/sessions/default/inbound", {"from": "491709999999", "text": "hi"})
    assert response.status_code == 201
    assert response.json()["id"].startswith("false_491709999999@c.us_")


def test_inbound_with_media_sets_media_url(api, server):
    api.working("default")
    control(
        server,
        "/sessions/default/inbound",
        {
            "from": "491709999999",
            "text": "pic",
            "media": {"mimetype": "image/png", "filename": "a.png", "data": "iVBORw0KGgo="},
        },
    )
    media = server.events()[-1]["payload"]["media"]
    assert media["filename"] == "a.png" and media["url"].endswith(".png")


def test_inbound_on_session_not_working_answers_409(api, server):
    api.create("default", start=True)
    assert control(server, "/sessions/default/inbound", {"from": "1", "text": "x"}).status_code == 409


def test_ack_endpoint_emits_ack_and_suppresses_duplicates(api, server):
    api.working("default")
    message_id = server.inbound("default", "491709999999", "hi")
    first = control(server, "/sessions/default/ack", {"id": message_id, "ack": 3})
    second = control(server, "/sessions/default/ack", {"id": message_id, "ack": 3})
    assert (first.json(), second.json()) == ({"emitted": True}, {"emitted": False})
    acks = [e for e in server.events() if e["event"] == "message.ack"]
    assert len(acks) == 1 and acks[0]["payload"]["ackName"] == "READ"


def test_messages_endpoint_lists_sent_messages(api, server):
    api.working("default")
    api("POST", "/api/sendText", json=dict(TEXT, id="X1"))
    messages = control(server, "/sessions/default/messages", method="GET").json()
    assert [(m["clientId"], m["body"], m["chatId"]) for m in messages] == [("X1", "Hallo", "4915112345678@c.us")]


def test_restart_stops_sessions_keeps_config_and_changes_start_timestamp(api, server):
    api.working("default", config={"metadata": {"a": "b"}})
    before = api("GET", "/api/server/status").json()["startTimestamp"]
    time.sleep(0.01)
    control(server, "/restart", {})
    body = api("GET", "/api/sessions/default").json()
    assert (body["status"], body["config"]) == ("STOPPED", {"metadata": {"a": "b"}})
    assert api("GET", "/api/server/status").json()["startTimestamp"] > before


def test_restart_keeps_auth_so_start_goes_to_working(api, server):
    api.working("default")
    server.restart()
    api("POST", "/api/sessions/default/start")
    api.wait_status("default", "WORKING")


def test_restart_with_wipe_forgets_sessions(api, server):
    api.create("default", start=True)
    control(server, "/restart", {"wipe": True})
    assert api("GET", "/api/sessions", params={"all": "true"}).json() == []


def test_latency_delays_api_calls(api, server):
    control(server, "/latency", {"ms": 200})
    started = time.monotonic()
    api("GET", "/api/sessions")
    assert time.monotonic() - started >= 0.2


def test_fail_next_answers_status_then_recovers(api, server):
    control(server, "/fail-next", {"count": 2, "status": 503})
    first, second, third = (api("GET", "/api/sessions") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.json() == {"message": "Simulated failure", "error": "Service Unavailable", "statusCode": 503}


def test_fail_next_with_status_zero_drops_the_connection(api, server):
    server.fail_next(1, 0)
    with pytest.raises(requests.ConnectionError):
        api("GET", "/api/sessions")
    assert api("GET", "/api/sessions").status_code == 200


def test_fail_next_leaves_ping_alone(server):
    server.fail_next(1, 503)
    assert requests.get(server.url + "/ping", timeout=5).status_code == 200


def test_reset_forgets_everything(api, server):
    api.working("default")
    server.set_latency(5)
    control(server, "/reset")
    state = control(server, "/state", method="GET").json()
    assert (state["sessions"], state["latencyMs"]) == ({}, 0)
    assert server.events() == []


def test_logout_from_phone_rescan_shows_new_qr(api, server):
    api.working("default")
    control(server, "/sessions/default/logout-from-phone", {"mode": "rescan"})
    api.wait_status("default", "SCAN_QR_CODE")
    assert api("GET", "/api/sessions/default").json()["me"] is None


def test_logout_from_phone_silent_keeps_working_but_delivers_nothing(api, server):
    api.working("default")
    server.logout_from_phone("default", mode="silent")
    response = api("POST", "/api/sendText", json=TEXT)
    time.sleep(0.1)
    assert response.status_code == 201
    assert api("GET", "/api/sessions/default").json()["status"] == "WORKING"
    assert [e for e in server.events() if e["event"] == "message.ack"] == []


def test_restart_after_silent_logout_needs_a_new_scan(api, server):
    api.working("default")
    server.logout_from_phone("default", mode="silent")
    api("POST", "/api/sessions/default/restart")
    api.wait_status("default", "SCAN_QR_CODE")


def test_auto_scan_pairs_without_help(make_api):
    api = make_api(auto_scan=0.05)
    api.create("default", start=True)
    api.wait_status("default", "WORKING")


def test_state_lists_sessions_with_qr(api, server):
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    state = control(server, "/state", method="GET").json()
    assert state["sessions"]["default"]["qr"]["value"].startswith("2@")
    assert "api_key" not in state["settings"]


def test_webhooks_endpoint_lists_deliveries(api, server, receiver):
    api.working("default", config={"webhooks": [{"url": receiver.url, "events": ["session.status"]}]})
    entries = wait_until(lambda: control(server, "/webhooks", method="GET").json())
    assert {"url", "event", "status", "attempt"} <= set(entries[0])


def test_html_page_lists_sessions_with_qr_and_buttons(api, server):
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    page = requests.get(server.url + "/_sim/", timeout=5)
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.text
    assert "SCAN_QR_CODE" in html and "/_sim/sessions/default/qr.png" in html
    for label in (
        "Scan",
        "Fail",
        "Stop",
        "Receive text",
        "Receive image",
        "Restart server",
        "Set latency",
        "Fail next calls",
    ):
        assert f">{label}</button>" in html


def test_html_page_never_reloads_itself_over_what_is_typed(api, server):
    html = requests.get(server.url + "/_sim/", timeout=5).text
    assert 'http-equiv="refresh"' not in html
    assert '<script src="/_sim/control.js" defer></script>' in html


def test_html_page_script_is_served_as_javascript(server):
    script = requests.get(server.url + "/_sim/control.js", timeout=5)
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "data-live" in script.text


def test_live_table_reloads_itself_for_browsers_without_scripts(api, server):
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    page = requests.get(server.url + "/_sim/", timeout=5).text
    assert '<iframe src="/_sim/live"' in page[page.index("<noscript>") : page.index("</noscript>")]
    live = requests.get(server.url + "/_sim/live", timeout=5).text
    assert 'http-equiv="refresh" content="3"' in live
    assert "SCAN_QR_CODE" in live and "/_sim/sessions/default/qr.png" in live and "<form" not in live


def test_html_qr_image_is_a_png(api, server):
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    image = requests.get(server.url + "/_sim/sessions/default/qr.png", timeout=5)
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_form_post_acts_and_redirects_to_page(api, server):
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    response = requests.post(
        server.url + "/_sim/sessions/default/scan", data={"phone": "491701111111"}, allow_redirects=False, timeout=5
    )
    assert (response.status_code, response.headers["Location"]) == (303, "/_sim/")
    assert server.session("default")["me"]["id"] == "491701111111@c.us"


def test_form_receive_image_creates_media_message(api, server):
    api.working("default")
    requests.post(
        server.url + "/_sim/sessions/default/inbound",
        data={"from": "491709999999", "text": "pic", "image": "1"},
        timeout=5,
    )
    assert server.events()[-1]["payload"]["media"]["mimetype"] == "image/png"


def test_form_create_session_with_webhook(server):
    requests.post(server.url + "/_sim/sessions", data={"name": "manual", "webhook": "http://127.0.0.1:9/x"}, timeout=5)
    assert server.session("manual")["config"]["webhooks"][0]["events"] == ["*"]


def test_helper_scan_of_unknown_session_raises(server):
    with pytest.raises(ControlError):
        server.scan("ghost")


def test_simserver_rejects_unknown_options():
    from wahasim.testing import SimServer

    with pytest.raises(TypeError):
        SimServer(not_an_option=1)


def test_numbers_marked_absent_are_not_on_whatsapp_until_marked_present(api, server):
    api.working("default")

    def exists(phone):
        return api("GET", "/api/contacts/check-exists", params={"phone": phone, "session": "default"}).json()

    assert exists("4915112345678")["numberExists"] is True
    response = control(server, "/numbers/absent", {"numbers": ["+4915112345678"]})
    assert response.status_code == 200 and response.json()["absent"] == ["4915112345678"]
    assert exists("4915112345678") == {"numberExists": False}
    assert exists("4915112345679")["numberExists"] is True
    control(server, "/numbers/absent", {"numbers": "4915112345678", "absent": False})
    assert exists("4915112345678")["numberExists"] is True
