"""Passkey pairing in the simulator, in the shapes of WAHA's OpenAPI document (2026.7.1): the challenge, the
assertion it checks, the optional confirmation code, the status events that carry them."""

from __future__ import annotations

import requests

from tests.builders import passkey_assertion


def _asking(api, server, confirm: bool = False) -> dict:
    api.create("default", start=True)
    api.wait_status("default", "SCAN_QR_CODE")
    response = requests.post(server.url + "/_sim/sessions/default/passkey", json={"confirm": confirm}, timeout=5)
    assert response.status_code == 200
    return response.json()


def test_a_passkey_request_offers_a_challenge_in_wahas_shape_and_announces_it(api, server, schemas):
    _asking(api, server)

    challenge = api("GET", "/api/default/auth/passkey/challenge")

    assert api.status("default") == "PASSKEY_REQUIRED"
    assert challenge.status_code == 200
    schemas.validate(challenge.json(), schemas.component("PasskeyChallenge"))
    assert challenge.json()["rpId"] == "web.whatsapp.com"
    [event] = [e for e in server.events() if e["payload"].get("status") == "PASSKEY_REQUIRED"]
    assert event["payload"]["data"] == challenge.json()


def test_the_assertion_of_the_challenge_links_the_phone(api, server):
    challenge = _asking(api, server)

    answer = api("POST", "/api/default/auth/passkey", json=passkey_assertion(challenge))

    assert answer.status_code == 201
    assert api.status("default") == "WORKING"
    assert api("GET", "/api/sessions/default/me").json()["id"].endswith("@c.us")
    assert api("GET", "/api/default/auth/passkey/challenge").status_code == 422  # nothing pending any more


def test_some_pairings_show_a_code_to_confirm_first(api, server, schemas):
    challenge = _asking(api, server, confirm=True)

    api("POST", "/api/default/auth/passkey", json=passkey_assertion(challenge))
    code = api("GET", "/api/default/auth/passkey/confirmation")
    confirmed = api("POST", "/api/default/auth/passkey/confirm")

    schemas.validate(code.json(), schemas.component("PasskeyConfirmationResponse"))
    assert [
        e["payload"].get("data")
        for e in server.events()
        if e["payload"].get("status") == "PASSKEY_CONFIRMATION_REQUIRED"
    ] == [code.json()]
    assert confirmed.status_code == 201
    assert api.status("default") == "WORKING"


def test_an_assertion_of_another_challenge_or_origin_is_refused(api, server):
    challenge = _asking(api, server)
    stale = passkey_assertion({**challenge, "challenge": "b3RoZXI"})
    phished = passkey_assertion(challenge, origin="https://portal.example.com")
    malformed = {**passkey_assertion(challenge), "type": "password"}

    answers = [api("POST", "/api/default/auth/passkey", json=body) for body in (stale, phished, malformed)]

    assert [a.status_code for a in answers] == [400, 400, 400]
    assert all(isinstance(a.json()["message"], list) for a in answers)
    assert api.status("default") == "PASSKEY_REQUIRED"


def test_outside_the_passkey_statuses_the_endpoints_answer_422(api):
    api.working("default")

    assert api("GET", "/api/default/auth/passkey/challenge").status_code == 422
    assert api("GET", "/api/default/auth/passkey/confirmation").json()["expected"] == ["PASSKEY_CONFIRMATION_REQUIRED"]
    assert api("POST", "/api/default/auth/passkey/confirm").status_code == 422
