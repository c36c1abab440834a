"""The WAHA fleet: health and version checks, placement across servers, draining."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from portal.extensions import db
from portal.models import AuditEvent, WahaServer, WahaSession
from portal.services import fleet, sessions
from portal.services import servers as servers_service
from portal.services.audit import SYSTEM
from portal.services.errors import Upstream
from tests.builders import TEST_ACTOR, make_tenant
from tests.helpers import closed_port


@pytest.fixture
def old_sim() -> Iterator[Any]:
    """A server that says it runs WAHA 2024.10.8, the single-session Core era."""
    from wahasim.testing import SimServer

    server = SimServer(api_key="old-key", engine="GOWS", version="2024.10.8", core_single_session=True)
    server.start()
    yield server
    server.stop()


def default_server() -> WahaServer:
    return db.session.scalars(select(WahaServer).where(WahaServer.name == "default")).one()


def add_second(second_sim: Any, capacity: int = 50) -> WahaServer:
    return servers_service.add_server("second", second_sim.url, second_sim.api_key, SYSTEM, capacity=capacity)


def test_check_servers_stores_version_engine_tier_and_start_time(ctx: Any, sim: Any) -> None:
    [summary] = fleet.check_servers()

    server = default_server()
    assert summary["health"] == "ok" and server.health == "ok"
    assert server.version == sim.settings.version
    assert server.engine == "GOWS"
    assert server.tier == sim.settings.effective_tier
    assert server.start_timestamp == sim.simulator.start_timestamp
    assert server.last_checked_at is not None and server.health_error is None


def test_check_servers_marks_an_unreachable_server_down_and_audits_it(ctx: Any) -> None:
    fleet.check_servers()
    default_server().base_url = f"http://127.0.0.1:{closed_port()}"
    db.session.commit()

    [summary] = fleet.check_servers()

    server = default_server()
    assert summary["health"] == "down" and server.health == "down"
    assert "ping" in server.health_error
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "server.health_changed").order_by(AuditEvent.id.desc())
    ).first()
    assert event.details["from"] == "ok" and event.details["to"] == "down"


def test_check_servers_marks_a_server_with_a_wrong_api_key_down(ctx: Any, second_sim: Any) -> None:
    servers_service.add_server("second", second_sim.url, "wrong-key", SYSTEM)

    results = {r["name"]: r for r in fleet.check_servers()}

    assert results["second"]["health"] == "down"
    assert results["second"]["error"] == "WAHA refused the API key"


def test_check_servers_warns_about_a_version_before_2026_6_1(
    ctx: Any, old_sim: Any, caplog: pytest.LogCaptureFixture
) -> None:
    servers_service.add_server("old", old_sim.url, old_sim.api_key, SYSTEM)

    with caplog.at_level(logging.WARNING, logger="portal.services.fleet"):
        results = {r["name"]: r for r in fleet.check_servers()}

    assert results["old"]["outdated"] is True and results["old"]["version"] == "2024.10.8"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("old" in w and "2024.10.8" in w and "predates 2026.6.1" in w for w in warnings)
    assert not any("server default " in w for w in warnings)


def test_check_servers_warns_about_an_old_version_once_but_the_cli_every_time(
    app: Any, ctx: Any, old_sim: Any, caplog: pytest.LogCaptureFixture
) -> None:
    servers_service.add_server("old", old_sim.url, old_sim.api_key, SYSTEM)
    fleet.check_servers()
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="portal.services.fleet"):
        fleet.check_servers()
        quiet = [r for r in caplog.records if "predates" in r.getMessage()]
        result = app.test_cli_runner().invoke(args=["fleet", "check"])
        loud = [r for r in caplog.records if "predates" in r.getMessage()]

    assert quiet == []
    assert len(loud) == 1
    assert "OUTDATED" in result.output


def test_an_old_single_session_core_server_gets_no_new_sessions(ctx: Any, old_sim: Any) -> None:
    old = servers_service.add_server("old", old_sim.url, old_sim.api_key, SYSTEM, capacity=500)
    default_server().is_enabled = False
    fleet.check_servers()

    assert old.health == "ok" and old.tier == "CORE"
    with pytest.raises(Upstream):
        servers_service.pick_server()


def test_check_servers_registers_the_first_server_when_none_is(ctx: Any, sim: Any) -> None:
    db.session.execute(delete(WahaServer))
    db.session.commit()

    results = fleet.check_servers()

    assert [(r["name"], r["base_url"], r["health"]) for r in results] == [("default", sim.url, "ok")]


def test_check_servers_notices_a_restart_once_and_audits_it(ctx: Any, sim: Any) -> None:
    fleet.check_servers()
    first = default_server().start_timestamp
    sim.restart()

    [summary] = fleet.check_servers()
    [again] = fleet.check_servers()

    assert summary["restarted"] is True
    assert summary["start_timestamp"] == sim.simulator.start_timestamp != first
    assert default_server().start_timestamp == sim.simulator.start_timestamp
    assert again["restarted"] is False
    restarts = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "server.restarted")).all()
    assert [(e.details["previous"], e.details["start_timestamp"]) for e in restarts] == [
        (first, sim.simulator.start_timestamp)
    ]


def test_pick_server_chooses_the_server_with_most_free_slots(ctx: Any, second_sim: Any) -> None:
    default_server().capacity = 2
    add_second(second_sim, capacity=5)
    fleet.check_servers()

    assert servers_service.pick_server().name == "second"


def test_pick_server_prefers_a_checked_healthy_server_to_an_unchecked_one(ctx: Any, second_sim: Any) -> None:
    fleet.check_servers()
    add_second(second_sim, capacity=500)  # more room, but not checked yet

    assert servers_service.pick_server().name == "default"


def test_pick_server_skips_a_server_that_is_down(ctx: Any, second_sim: Any) -> None:
    add_second(second_sim, capacity=500)
    second_sim.stop()
    fleet.check_servers()

    assert servers_service.pick_server().name == "default"


def test_pick_server_raises_when_every_server_is_full(ctx: Any) -> None:
    tenant = make_tenant("full")
    server = default_server()
    server.capacity = 1
    db.session.add(
        WahaSession(tenant_id=tenant.id, server_id=server.id, name="only", external_name="only", hmac_key="k" * 32)
    )
    db.session.commit()

    with pytest.raises(Upstream) as raised:
        servers_service.pick_server()
    assert raised.value.code == "waha_unavailable"
    assert raised.value.message == "No WAHA server has room for a new session right now."


def test_pick_server_says_the_server_is_unreachable_when_the_one_with_room_is_down(ctx: Any) -> None:
    server = default_server()
    server.base_url = f"http://127.0.0.1:{closed_port()}"  # WAHA is down
    db.session.commit()
    fleet.check_servers()

    with pytest.raises(Upstream) as raised:
        servers_service.pick_server()
    assert (raised.value.code, raised.value.details) == ("waha_unavailable", {"reason": "unreachable"})
    assert "cannot be reached" in raised.value.message and "room" not in raised.value.message


def test_sessions_spread_across_two_servers_by_free_capacity(ctx: Any, sim: Any, second_sim: Any) -> None:
    default_server().capacity = 2
    add_second(second_sim, capacity=3)
    fleet.check_servers()
    tenant = make_tenant("spread", max_sessions=10)

    placed = [sessions.create_session(tenant, TEST_ACTOR, name=f"s{n}").server.name for n in range(4)]

    # free slots go 2/3 -> 2/2 -> (tie, first by name) 1/2 -> 1/1 -> ...
    assert placed.count("second") == 2 and placed.count("default") == 2
    assert placed[0] == "second"
    assert {s["name"] for s in second_sim.simulator.list_sessions(True)} == {
        s.external_name
        for s in db.session.scalars(select(WahaSession).join(WahaServer).where(WahaServer.name == "second"))
    }


def test_a_drained_server_gets_no_new_sessions_and_keeps_its_own(ctx: Any, sim: Any, second_sim: Any) -> None:
    second = add_second(second_sim, capacity=100)
    fleet.check_servers()
    tenant = make_tenant("drain", max_sessions=10)
    existing = sessions.create_session(tenant, TEST_ACTOR, name="before")
    assert existing.server.name == "second"

    fleet.drain_server(second.id, TEST_ACTOR)
    later = sessions.create_session(tenant, TEST_ACTOR, name="after")

    assert later.server.name == "default"
    assert second_sim.session(existing.external_name)["status"] != "STOPPED"
    assert db.session.get(WahaSession, existing.id).server_id == second.id
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "server.drain")).one()
    assert audit.target_id == str(second.id) and audit.details["sessions"] == 1


def test_undrain_lets_a_server_take_sessions_again(ctx: Any, second_sim: Any) -> None:
    second = add_second(second_sim, capacity=100)
    fleet.check_servers()
    fleet.drain_server(second.id, TEST_ACTOR)
    assert servers_service.pick_server().name == "default"

    fleet.undrain_server(second.id, TEST_ACTOR)

    assert servers_service.pick_server().name == "second"
    assert db.session.scalars(select(AuditEvent.action).where(AuditEvent.action == "server.undrain")).one()


def test_a_disabled_server_gets_no_new_sessions(ctx: Any, second_sim: Any) -> None:
    second = add_second(second_sim, capacity=100)
    fleet.check_servers()

    fleet.update_server(second.id, TEST_ACTOR, is_enabled=False)

    assert servers_service.pick_server().name == "default"


def test_update_server_refuses_a_capacity_below_one(ctx: Any) -> None:
    from portal.services.errors import Invalid

    with pytest.raises(Invalid):
        fleet.update_server(default_server().id, TEST_ACTOR, capacity=0)


@pytest.mark.parametrize(
    "version, older",
    [
        ("2024.10.8", True),
        ("2026.5.9", True),
        ("2026.6.1", False),
        ("2026.7.1", False),
        ("2027.1.0", False),
        ("2025.12.3-plus", True),
        ("latest", False),
        (None, False),
    ],
)
def test_predates_multi_session_compares_calendar_versions(version: str | None, older: bool) -> None:
    assert fleet.predates_multi_session(version) is older


def test_fleet_drain_cli_drains_by_name(app: Any, ctx: Any, second_sim: Any) -> None:
    add_second(second_sim)

    result = app.test_cli_runner().invoke(args=["fleet", "drain", "second"])

    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert db.session.scalars(select(WahaServer.is_draining).where(WahaServer.name == "second")).one() is True


def test_fleet_undrain_cli_lets_the_server_take_sessions_again(app: Any, ctx: Any, second_sim: Any) -> None:
    second = add_second(second_sim)
    fleet.drain_server(second.id, TEST_ACTOR)

    result = app.test_cli_runner().invoke(args=["fleet", "undrain", "second"])

    assert result.exit_code == 0, result.output
    assert "WAHA server 'second' takes new sessions again." in result.output
    db.session.expire_all()
    assert db.session.scalars(select(WahaServer.is_draining).where(WahaServer.name == "second")).one() is False


def test_fleet_drain_cli_names_an_unknown_server_as_an_error(app: Any, ctx: Any) -> None:
    result = app.test_cli_runner().invoke(args=["fleet", "drain", "nowhere"])

    assert result.exit_code == 1
    assert "Error: No WAHA server named 'nowhere'." in result.output


def test_fleet_check_cli_fails_when_no_server_answers(app: Any, ctx: Any) -> None:
    default_server().base_url = f"http://127.0.0.1:{closed_port()}"
    db.session.commit()

    result = app.test_cli_runner().invoke(args=["fleet", "check"])

    assert result.exit_code == 1
    assert "down" in result.output
