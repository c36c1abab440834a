"""The API's side of plans: one 409 quota_exceeded at each door, the tenant's API rate from its plan, and
GET /waha/usage (tenant-isolated)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.extensions import db
from tests.helpers import Api

TO = "+491701234567"


def _limit(tenant: Any, **limits: int | None) -> None:
    for column, value in limits.items():
        setattr(tenant, column, value)
    db.session.commit()


def _send(api: Api, session: dict[str, Any], text: str = "Hello") -> Any:
    return api.post(f"/waha/sessions/{session['id']}/send", json={"to": TO, "text": text})


def test_send_over_the_daily_quota_is_409_quota_exceeded(api: Api, tenant: Any, working_session: Any) -> None:
    _limit(tenant, max_messages_per_day=2)
    assert [_send(api, working_session).status_code for _ in range(2)] == [200, 200]
    response = _send(api, working_session)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "quota_exceeded"
    details = error["details"]
    assert (details["quota"], details["limit"], details["used"]) == ("messages_per_day", 2, 2)
    resets = datetime.fromisoformat(details["resetsAt"])
    assert resets.hour == 0 and resets.tzinfo is not None
    assert error["message"]


def test_a_send_waha_never_took_gives_its_unit_back(api: Api, tenant: Any, sim: Any, working_session: Any) -> None:
    _limit(tenant, max_messages_per_day=1)
    sim.fail_next(10, 503)
    failed = _send(api, working_session)
    assert failed.status_code == 503
    sim.fail_next(0)
    assert _send(api, working_session).status_code == 200


def test_session_create_over_the_plan_is_409_without_reset(api: Api, tenant: Any) -> None:
    _limit(tenant, max_sessions=0)
    response = api.post("/waha/sessions", json={"sessionName": "one"})
    assert response.status_code == 409
    details = response.get_json()["error"]["details"]
    assert details == {"quota": "sessions", "limit": 0, "used": 0, "resetsAt": None}


def test_api_requests_per_minute_come_from_the_tenants_plan(api: Api, tenant: Any) -> None:
    _limit(tenant, max_api_requests_per_minute=2)
    assert [api.get("/waha/sessions").status_code for _ in range(2)] == [200, 200]
    response = api.get("/waha/sessions")
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "rate_limited"
    assert response.headers["X-RateLimit-Limit"] == "2"
    assert int(response.headers["Retry-After"]) >= 1


def test_usage_answers_each_limit_and_the_sends(api: Api, tenant: Any, working_session: Any) -> None:
    _limit(tenant, max_messages_per_month=100)
    _send(api, working_session)
    body = api.get("/waha/usage").get_json()
    lines = {q["quota"]: q for q in body["quotas"]}
    assert lines["messages_per_month"]["used"] == 1
    assert lines["messages_per_month"]["limit"] == 100
    assert lines["sessions"] == {"quota": "sessions", "used": 1, "limit": 10, "resetsAt": None}
    assert body["sessions"] == [{"id": working_session["id"], "name": working_session["name"], "messages": 1}]
    assert body["days"][-1]["messages"] == 1
    assert body["plan"] == "Default"


def test_usage_of_another_tenant_is_invisible(api: Api, other_api: Api, working_session: Any) -> None:
    _send(api, working_session)
    body = other_api.get("/waha/usage").get_json()
    assert {q["quota"]: q["used"] for q in body["quotas"]}["messages_per_day"] == 0
    assert body["sessions"] == []
