"""What an integrator sees of WhatsApp's limits on a number: the session's numberHealth, and the 409 a first
message to a new contact gets while the number is limited."""

from __future__ import annotations

from typing import Any

from portal.services import number_health
from portal.services.sessions import get_session
from tests.helpers import Api

KNOWN = "+491705550001"
NEW = "+491705550002"


def _send(api: Api, session: dict[str, Any], to: str, text: str) -> Any:
    return api.post(f"/waha/sessions/{session['id']}/send", json={"to": to, "text": text})


def test_a_limited_number_refuses_new_contacts_with_409_and_shows_why(
    api: Api, sim: Any, tenant: Any, working_session: dict[str, Any]
) -> None:
    assert _send(api, working_session, KNOWN, "first").status_code == 200
    sim.set_timelock(working_session["externalSessionId"], True, seconds=1800)
    number_health.check_session(working_session["id"])

    shown = api.get(f"/waha/sessions/{working_session['id']}").get_json()["numberHealth"]
    refused = _send(api, working_session, NEW, "hello stranger")
    reply = _send(api, working_session, KNOWN, "a reply")

    assert shown["level"] == "limited" and shown["timelock"]["active"] is True
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "new_contact_limited"
    assert error["details"]["until"] == shown["newContactsBlockedUntil"] == shown["timelock"]["endsAt"]
    assert reply.status_code == 200
    assert get_session(tenant, working_session["id"]).status == "WORKING"


def test_a_number_without_limits_reads_ok(api: Api, working_session: dict[str, Any]) -> None:
    number_health.check_session(working_session["id"])

    shown = api.get(f"/waha/sessions/{working_session['id']}").get_json()["numberHealth"]

    assert shown["level"] == "ok" and shown["newContactsBlockedUntil"] is None
    assert shown["capping"]["status"] == "NONE" and shown["capping"]["totalQuota"] == -1
    assert shown["checkedAt"] is not None
