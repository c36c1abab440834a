"""Rate limits per credential, WAHA outages (503 with Retry-After, within the timeout) and /waha/health."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from portal.extensions import db
from portal.models import WahaServer
from portal.waha.client import close_all_clients
from tests.builders import make_token
from tests.helpers import Api


def _error(response: Any) -> dict[str, Any]:
    return response.get_json()["error"]


def _closed_port_url() -> str:
    """A loopback URL nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def fresh_clients() -> Iterator[None]:
    """Outage tests trip circuit breakers; start and end with new WAHA clients so no test inherits one."""
    close_all_clients()
    yield
    close_all_clients()


@pytest.fixture
def waha_down(ctx: Any, fresh_clients: None) -> str:
    """Point the WAHA server row at a closed port."""
    server = db.session.scalars(db.select(WahaServer)).one()
    server.base_url = _closed_port_url()
    db.session.commit()
    return server.base_url


# ---- API rate limit -------------------------------------------------------------------------------------------


def test_api_rate_limit_answers_429_with_retry_after(api: Api, monkeypatch: Any, app: Any) -> None:
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "3 per minute")
    statuses = [api.get("/waha/sessions").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = api.get("/waha/sessions")
    assert _error(response)["code"] == "rate_limited"
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_api_rate_limit_is_per_token(api: Api, tenant: Any, monkeypatch: Any, app: Any) -> None:
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "2 per minute")
    for _ in range(3):
        api.get("/waha/sessions")
    assert api.get("/waha/sessions").status_code == 429
    assert api.as_(make_token(tenant, name="second")).get("/waha/sessions").status_code == 200


def test_api_rate_limit_is_shared_across_endpoints(api: Api, monkeypatch: Any, app: Any) -> None:
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "2 per minute")
    api.get("/waha/sessions")
    api.get("/waha/messages")
    assert api.get("/waha/health").status_code == 429


def test_api_answers_carry_rate_limit_headers(api: Api) -> None:
    response = api.get("/waha/sessions")
    assert int(response.headers["X-RateLimit-Remaining"]) >= 0


def test_docs_are_not_rate_limited(api: Api, monkeypatch: Any, app: Any) -> None:
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "1 per minute")
    assert [api.get("/waha/openapi.json").status_code for _ in range(3)] == [200, 200, 200]


# ---- WAHA unavailable -----------------------------------------------------------------------------------------


def test_create_session_with_waha_down_is_503_within_timeout(api: Api, app: Any, waha_down: str) -> None:
    started = time.monotonic()
    response = api.post("/waha/sessions", json={"sessionName": "support"})
    elapsed_ms = (time.monotonic() - started) * 1000
    assert response.status_code == 503, response.get_json()
    assert _error(response)["code"] == "waha_unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    assert elapsed_ms < app.config["WAHA_TIMEOUT"]


def test_create_session_with_waha_down_leaves_no_session(api: Api, waha_down: str) -> None:
    api.post("/waha/sessions", json={"sessionName": "support"})
    assert api.get("/waha/sessions").get_json()["data"] == []


def test_send_with_waha_down_is_503_and_message_marked_error(
    api: Api, working_session: Any, fresh_clients: None
) -> None:
    server = db.session.scalars(db.select(WahaServer)).one()
    server.base_url = _closed_port_url()
    db.session.commit()
    response = api.post(f"/waha/sessions/{working_session['id']}/send", json={"to": "+491701234567", "text": "x"})
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    stored = api.get(f"/waha/sessions/{working_session['id']}/messages").get_json()["data"]
    assert [m["status"] for m in stored] == ["ERROR"]


def test_waha_answering_503_is_503(api: Api, sim: Any, session: Any, fresh_clients: None) -> None:
    sim.fail_next(5, 503)
    response = api.post(f"/waha/sessions/{session['id']}/stop")
    assert response.status_code == 503
    assert _error(response)["code"] == "waha_unavailable"
    assert "Retry-After" in response.headers


def test_slow_waha_is_503_after_the_timeout(
    api: Api, app: Any, sim: Any, session: Any, fresh_clients: None, monkeypatch: Any
) -> None:
    monkeypatch.setitem(app.config, "WAHA_TIMEOUT", 1000)  # the clients made from here on wait at most 1 s
    timeout_ms = app.config["WAHA_TIMEOUT"]
    sim.set_latency(timeout_ms + 2000)
    try:
        started = time.monotonic()
        response = api.get(f"/waha/sessions/{session['id']}/screen")
        elapsed_ms = (time.monotonic() - started) * 1000
    finally:
        sim.set_latency(0)
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    # WAHA_TIMEOUT bounds the whole call: the retries share its deadline instead of each taking a full timeout.
    assert app.config["WAHA_RETRY_ATTEMPTS"] >= 1
    assert elapsed_ms < timeout_ms + 700


def test_open_circuit_answers_retry_after_its_remaining_open_time_in_every_process(
    api: Api, sim: Any, session: Any, fresh_clients: None
) -> None:
    sim.fail_next(100, 503)
    answers = [api.post(f"/waha/sessions/{session['id']}/stop") for _ in range(4)]
    assert {a.status_code for a in answers} == {503}
    opened_at = time.monotonic()

    close_all_clients()  # a new client, as in another web process or an RQ work-horse, sees the same circuit
    response = api.post(f"/waha/sessions/{session['id']}/stop")
    sim.fail_next(0)

    assert response.status_code == 503
    assert _error(response)["details"]["reason"] == "circuit_open"
    reset_s = 30  # the breaker's reset time (WahaSettings.breaker_reset_s)
    waited = time.monotonic() - opened_at
    assert reset_s - waited - 1 <= int(response.headers["Retry-After"]) <= reset_s


def test_logout_of_session_lost_by_waha_is_409(api: Api, sim: Any, session: Any) -> None:
    sim.restart(wipe=True)
    response = api.post(f"/waha/sessions/{session['id']}/logout")
    assert response.status_code == 409
    assert _error(response)["code"] == "session_missing_on_waha"


def test_start_of_session_lost_by_waha_recreates_it(api: Api, sim: Any, session: Any) -> None:
    sim.restart(wipe=True)
    assert api.post(f"/waha/sessions/{session['id']}/start").status_code == 200
    assert sim.session(session["externalSessionId"]) is not None


# ---- health ---------------------------------------------------------------------------------------------------


def test_health_reports_waha_version(api: Api) -> None:
    response = api.get("/waha/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["servers"][0]["ok"] is True
    assert body["servers"][0]["version"]


def test_health_reports_down_server(api: Api, waha_down: str) -> None:
    body = api.get("/waha/health").get_json()
    assert body["status"] == "down"
    assert body["servers"][0]["ok"] is False


def test_health_does_not_reveal_server_addresses(api: Api) -> None:
    assert "127.0.0.1" not in api.get("/waha/health").get_data(as_text=True)


def test_health_needs_credentials(api: Api) -> None:
    assert api.as_(None).get("/waha/health").status_code == 401


def test_retry_after_is_sent_only_when_there_is_something_to_wait_for(client, tenant):
    from tests.builders import make_token

    token = make_token(tenant)
    response = client.get("/waha/sessions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert "Retry-After" not in response.headers
    assert "X-RateLimit-Remaining" in response.headers
