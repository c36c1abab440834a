"""Linking a phone by passkey over /waha: the step to take, the assertion handed to WAHA, the code to confirm."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent
from tests.builders import passkey_assertion, passkey_session, wait_for_status
from tests.helpers import Api


def test_an_integrator_links_a_phone_that_asks_for_its_passkey(api: Api, tenant: Any, sim: Any) -> None:
    session = passkey_session(tenant, sim)

    step = api.get(f"/waha/sessions/{session.id}/passkey").get_json()
    submitted = api.post(f"/waha/sessions/{session.id}/passkey", json=passkey_assertion(step["challenge"]))

    assert step["status"] == "PASSKEY_REQUIRED" and step["step"] == "assert" and step["code"] is None
    assert step["challenge"]["rpId"] == "web.whatsapp.com"
    assert submitted.status_code == 200, submitted.get_json()
    assert wait_for_status(api, session.id, "WORKING")["me"]["id"].endswith("@c.us")
    [audited] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "session.passkey_submit")).all()
    assert set(audited.details) == {"credential_suffix"}  # who linked what, not the assertion


def test_a_pairing_with_a_code_is_confirmed_after_comparing_it(api: Api, tenant: Any, sim: Any) -> None:
    session = passkey_session(tenant, sim, confirm=True)
    challenge = api.get(f"/waha/sessions/{session.id}/passkey").get_json()["challenge"]
    api.post(f"/waha/sessions/{session.id}/passkey", json=passkey_assertion(challenge))
    wait_for_status(api, session.id, "PASSKEY_CONFIRMATION_REQUIRED")

    step = api.get(f"/waha/sessions/{session.id}/passkey").get_json()
    confirmed = api.post(f"/waha/sessions/{session.id}/passkey/confirm")

    assert step["step"] == "confirm" and step["code"].isdigit() and step["challenge"] is None
    assert confirmed.status_code == 200
    assert wait_for_status(api, session.id, "WORKING")["status"] == "WORKING"


def test_a_wrong_or_malformed_assertion_is_refused_and_the_session_still_waits(api: Api, tenant: Any, sim: Any) -> None:
    session = passkey_session(tenant, sim)
    challenge = api.get(f"/waha/sessions/{session.id}/passkey").get_json()["challenge"]
    wrong = passkey_assertion({**challenge, "challenge": "c3RhbGU"})
    malformed = {**passkey_assertion(challenge), "rawId": "not base64url!"}

    refused_by_waha = api.post(f"/waha/sessions/{session.id}/passkey", json=wrong)
    refused_here = api.post(f"/waha/sessions/{session.id}/passkey", json=malformed)

    assert refused_by_waha.status_code == 400 and refused_by_waha.get_json()["error"]["code"] == "validation_error"
    assert refused_here.status_code == 400
    assert [f["field"] for f in refused_here.get_json()["error"]["details"]["fields"]] == ["rawId"]
    assert api.get(f"/waha/sessions/{session.id}/passkey").get_json()["step"] == "assert"


def test_without_a_passkey_request_the_endpoints_answer_409(api: Api, working_session: dict[str, Any]) -> None:
    base = f"/waha/sessions/{working_session['id']}/passkey"

    answers = [api.get(base), api.post(base + "/confirm")]

    assert [(a.status_code, a.get_json()["error"]["code"]) for a in answers] == [(409, "session_not_ready")] * 2
