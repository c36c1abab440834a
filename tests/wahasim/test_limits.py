"""The reach-out timelock and new-chat capping: their endpoints in the shapes of WAHA's own generated models
(waha-py 2026.9.2), their control switches, and WhatsApp's 463/475 refusals of sends to new contacts."""

from __future__ import annotations

import time

import requests
from waha.generated.models import MeInfo, MessageCappingData, ReachoutTimelockData, WASessionStatusBody

from portal.waha import errors as waha_errors

KNOWN = "491705550001@c.us"
NEW = "491705550002@c.us"


def control(server, path, json=None):
    return requests.post(server.url + "/_sim" + path, json=json, timeout=5)


def _send(api, chat_id: str, text: str = "hi"):
    return api("POST", "/api/sendText", json={"session": "default", "chatId": chat_id, "text": text})


def test_without_limits_both_endpoints_answer_in_wahas_shapes(api):
    api.working("default")

    timelock = ReachoutTimelockData.model_validate(api("GET", "/api/sessions/default/timelock").json())
    capping = MessageCappingData.model_validate(api("GET", "/api/sessions/default/capping").json())

    assert timelock.isActive is False
    assert capping.cappingStatus.value == "NONE" and capping.totalQuota == -1


def test_the_endpoints_need_a_working_session(api):
    api.create("default", start=False)

    response = api("GET", "/api/sessions/default/timelock")

    assert response.status_code == 422 and response.json()["expected"] == ["WORKING"]


def test_a_timelock_refuses_new_contacts_with_463_and_lets_known_chats_through(api, server):
    api.working("default")
    assert _send(api, KNOWN).status_code == 201
    switched = control(server, "/sessions/default/timelock", {"active": True, "seconds": 600})

    refused = _send(api, NEW)
    reply = _send(api, KNOWN, "reply")

    assert switched.status_code == 200
    timelock = ReachoutTimelockData.model_validate(api("GET", "/api/sessions/default/timelock").json())
    assert timelock.isActive and 590 <= timelock.timeEnforcementEnds - time.time() <= 600
    assert refused.status_code == 500 and "463" in refused.json()["exception"]["message"]
    assert reply.status_code == 201
    assert api.status("default") == "WORKING"
    error = waha_errors.from_response(refused.status_code, refused.text)
    assert isinstance(error, waha_errors.WahaNewContactLimited) and error.reason == "timelock"


def test_capped_refuses_new_chats_with_475_and_counts_the_quota_before(api, server):
    api.working("default")
    control(server, "/sessions/default/capping", {"status": "FIRST_WARNING", "total": 10, "used": 8})

    _send(api, NEW)
    counted = MessageCappingData.model_validate(api("GET", "/api/sessions/default/capping").json())
    control(server, "/sessions/default/capping", {"status": "CAPPED", "total": 10})
    refused = _send(api, "491705550003@c.us")

    assert counted.usedQuota == 9
    assert refused.status_code == 500 and "475" in refused.json()["exception"]["message"]
    assert waha_errors.from_response(500, refused.text).wa_code == 475


def test_me_carries_the_limits_once_known_and_a_timelock_is_announced_in_a_status_event(api, server):
    api.working("default")
    assert "reachoutTimelock" not in api("GET", "/api/sessions/default/me").json()

    server.set_timelock("default", True, seconds=60)
    server.set_capping("default", "SECOND_WARNING")

    me = MeInfo.model_validate(api("GET", "/api/sessions/default/me").json())
    assert me.reachoutTimelock is not None and me.reachoutTimelock.isActive
    assert me.messageCapping is not None and me.messageCapping.cappingStatus.value == "SECOND_WARNING"
    [event] = [e for e in server.events() if e["event"] == "session.status" and (e["payload"].get("data") or {})]
    body = WASessionStatusBody.model_validate(event["payload"])
    assert body.status.value == "WORKING" and body.data["reachoutTimelock"]["isActive"] is True


def test_bad_control_input_is_refused(api, server):
    api.working("default")

    assert control(server, "/sessions/default/capping", {"status": "SOMETIMES"}).status_code == 400
    assert control(server, "/sessions/default/timelock", {"seconds": 0}).status_code == 400
    assert control(server, "/sessions/default/timelock", {"seconds": "soon"}).status_code == 400
    assert control(server, "/sessions/ghost/timelock", {}).status_code == 404
