"""/healthz, /readyz and the per-server WAHA health report."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import WahaServer
from portal.services import servers as servers_service
from portal.services.audit import SYSTEM
from portal.services.health import readiness, waha_health
from tests.helpers import closed_port


def _default_server() -> WahaServer:
    return db.session.scalars(select(WahaServer).where(WahaServer.name == "default")).one()


def test_healthz_answers_while_the_database_is_down(request_in_app: Any) -> None:
    status, body = request_in_app(
        "/healthz", DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/portal_test"
    )

    assert status == 200
    assert json.loads(body)["status"] == "ok"


def test_readyz_is_ready_when_database_redis_and_waha_answer(client: Any) -> None:
    response = client.get("/readyz")

    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    for name in ("database", "redis", "waha"):
        assert body["checks"][name]["ok"] is True
        assert body["checks"][name]["error"] is None
        assert body["checks"][name]["latency_ms"] >= 0
    assert body["checks"]["waha"]["servers"]["default"]["ok"] is True


def test_readyz_reports_the_database_down(request_in_app: Any) -> None:
    status, text = request_in_app(
        "/readyz", DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/portal_test"
    )

    body = json.loads(text)
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["ok"] is False
    assert "OperationalError" in body["checks"]["database"]["error"]
    assert body["checks"]["redis"]["ok"] is True


def test_readyz_reports_redis_down(request_in_app: Any) -> None:
    status, text = request_in_app("/readyz", REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")

    body = json.loads(text)
    assert status == 503
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_readyz_reports_waha_down_when_no_server_answers(ctx: Any, client: Any) -> None:
    _default_server().base_url = f"http://127.0.0.1:{closed_port()}"
    db.session.commit()

    response = client.get("/readyz")

    body = response.get_json()
    assert response.status_code == 503
    assert body["checks"]["waha"]["ok"] is False
    assert body["checks"]["waha"]["servers"]["default"]["ok"] is False
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


def test_readyz_is_ready_when_one_of_two_servers_answers(ctx: Any, client: Any, second_sim: Any) -> None:
    servers_service.add_server("second", second_sim.url, second_sim.api_key, SYSTEM)
    _default_server().base_url = f"http://127.0.0.1:{closed_port()}"
    db.session.commit()

    body = client.get("/readyz").get_json()

    assert body["status"] == "ready"
    assert body["checks"]["waha"]["servers"]["second"]["ok"] is True
    assert body["checks"]["waha"]["servers"]["default"]["ok"] is False


def test_readiness_leaves_out_disabled_servers(ctx: Any) -> None:
    _default_server().is_enabled = False
    db.session.commit()

    checks = readiness()

    assert checks["waha"]["ok"] is False
    assert checks["waha"]["error"] == "no enabled WAHA server is registered"


def test_waha_health_reports_version_engine_and_sessions_per_server(ctx: Any, second_sim: Any) -> None:
    servers_service.add_server("second", second_sim.url, second_sim.api_key, SYSTEM, capacity=7)

    report = {row["name"]: row for row in waha_health()}

    assert set(report) == {"default", "second"}
    second = report["second"]
    assert second["ok"] is True
    assert second["base_url"] == second_sim.url
    assert second["version"] == second_sim.settings.version
    assert second["engine"] == "GOWS"
    assert second["tier"] == second_sim.settings.effective_tier
    assert second["sessions"] == 0 and second["capacity"] == 7
    assert second["latency_ms"] >= 0 and second["error"] is None


def test_waha_health_reports_a_refused_api_key(ctx: Any, second_sim: Any) -> None:
    servers_service.add_server("second", second_sim.url, "not-the-key", SYSTEM)

    report = {row["name"]: row for row in waha_health()}

    assert report["second"]["ok"] is False
    assert report["second"]["error"] == "WAHA refused the API key"
    assert report["default"]["ok"] is True


def test_waha_health_reports_an_unreachable_server(ctx: Any) -> None:
    servers_service.add_server("gone", f"http://127.0.0.1:{closed_port()}", "key", SYSTEM)

    report = {row["name"]: row for row in waha_health()}

    assert report["gone"]["ok"] is False
    assert "WahaUnavailable" in report["gone"]["error"] or "cannot reach" in report["gone"]["error"]


def test_waha_health_without_live_returns_what_the_last_check_stored(ctx: Any, sim: Any) -> None:
    from portal.services.fleet import check_servers

    check_servers()
    _default_server().base_url = f"http://127.0.0.1:{closed_port()}"
    db.session.commit()

    stored = waha_health(live=False)

    assert stored[0]["name"] == "default"
    assert stored[0]["ok"] is True
    assert stored[0]["version"] == sim.settings.version
    assert stored[0]["checked_at"] is not None


def test_readyz_shows_no_internal_urls_to_other_hosts(ctx: Any, client: Any) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    _default_server().base_url = down
    db.session.commit()

    response = client.get("/readyz", environ_base={"REMOTE_ADDR": "10.1.2.3"})

    assert response.status_code == 503
    body = response.get_json()
    assert body == {
        "status": "not_ready",
        "checks": {"database": {"ok": True}, "redis": {"ok": True}, "waha": {"ok": False}},
    }
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_readyz_shows_details_with_the_metrics_token(ctx: Any, app: Any, client: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-me-0123456789")
    down = f"http://127.0.0.1:{closed_port()}"
    _default_server().base_url = down
    db.session.commit()

    anonymous = client.get("/readyz", environ_base={"REMOTE_ADDR": "10.1.2.3"}).get_json()
    operator = client.get(
        "/readyz", headers={"Authorization": "Bearer scrape-me-0123456789"}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    ).get_json()

    assert "servers" not in anonymous["checks"]["waha"]
    assert down in operator["checks"]["waha"]["servers"]["default"]["error"]
