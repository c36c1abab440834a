"""Platform admin pages for WAHA servers: list, add, detail, drain/undrain, check, settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, WahaServer, WahaSession
from portal.services import fleet
from portal.services import servers as servers_service
from portal.services.audit import SYSTEM
from tests.builders import make_tenant, make_user
from tests.helpers import closed_port, csrf_token


@pytest.fixture
def second_sim() -> Iterator[Any]:
    from wahasim.testing import SimServer

    server = SimServer(api_key="sim-two-key", engine="GOWS")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def admin(ctx: Any) -> Any:
    return make_user(None, email="ops@platform.example.com", is_platform_admin=True)


@pytest.fixture
def admin_client(admin: Any, login: Any) -> Any:
    return login(admin)


def default_server() -> WahaServer:
    db.session.expire_all()
    return db.session.scalars(select(WahaServer).where(WahaServer.name == "default")).one()


def test_servers_pages_refuse_users_who_are_not_platform_admins(owner: Any, login: Any) -> None:
    client = login(owner)

    for path in ("/platform/servers/", "/platform/servers/new", f"/platform/servers/{default_server().id}"):
        assert client.get(path).status_code == 403


def test_servers_pages_send_anonymous_visitors_to_sign_in(client: Any) -> None:
    response = client.get("/platform/servers/")

    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_servers_page_lists_health_version_and_capacity(admin_client: Any, sim: Any) -> None:
    fleet.check_servers()

    page = admin_client.get("/platform/servers/").get_data(as_text=True)

    assert "default" in page and sim.url in page
    assert sim.settings.version in page and "GOWS" in page
    assert "0 of 50" in page
    assert "badge-ok" in page and "taking sessions" in page


def test_servers_page_flags_a_version_before_2026_6_1(admin_client: Any) -> None:
    from wahasim.testing import SimServer

    with SimServer(api_key="old-key", version="2024.10.8", core_single_session=True) as old:
        servers_service.add_server("old", old.url, old.api_key, SYSTEM)
        fleet.check_servers()

        page = admin_client.get("/platform/servers/").get_data(as_text=True)

    assert "2024.10.8" in page
    assert "Older than 2026.6.1" in page
    assert "no new sessions" in page  # placement skips a single-session Core server


def test_servers_table_alone_for_htmx_refresh(admin_client: Any) -> None:
    response = admin_client.get("/platform/servers/", headers={"HX-Request": "true"})

    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<table" in text and "<html" not in text


def test_add_server_registers_it_and_checks_it_at_once(admin_client: Any, second_sim: Any) -> None:
    token = csrf_token(admin_client, "/platform/servers/new")

    response = admin_client.post(
        "/platform/servers/new",
        data={
            "csrf_token": token,
            "name": "waha-2",
            "base_url": second_sim.url,
            "api_key": second_sim.api_key,
            "capacity": "20",
        },
        follow_redirects=True,
    )

    page = response.get_data(as_text=True)
    server = db.session.scalars(select(WahaServer).where(WahaServer.name == "waha-2")).one()
    assert response.status_code == 200
    assert server.health == "ok" and server.capacity == 20 and server.api_key == second_sim.api_key
    assert f"WAHA {second_sim.settings.version} (GOWS) answers" in page
    assert second_sim.api_key not in page


def test_add_server_shows_a_duplicate_url_next_to_the_form(admin_client: Any, sim: Any) -> None:
    token = csrf_token(admin_client, "/platform/servers/new")

    response = admin_client.post(
        "/platform/servers/new",
        data={"csrf_token": token, "name": "again", "base_url": sim.url, "api_key": "x", "capacity": "5"},
    )

    assert response.status_code == 400
    assert "already registered" in response.get_data(as_text=True)


def test_add_server_that_does_not_answer_is_added_as_down(admin_client: Any) -> None:
    token = csrf_token(admin_client, "/platform/servers/new")

    response = admin_client.post(
        "/platform/servers/new",
        data={
            "csrf_token": token,
            "name": "later",
            "base_url": f"http://127.0.0.1:{closed_port()}",
            "api_key": "k",
            "capacity": "5",
        },
        follow_redirects=True,
    )

    assert "does not answer yet" in response.get_data(as_text=True)
    assert db.session.scalars(select(WahaServer.health).where(WahaServer.name == "later")).one() == "down"


def test_add_server_refuses_a_post_without_csrf_token(admin_client: Any, second_sim: Any) -> None:
    response = admin_client.post(
        "/platform/servers/new", data={"name": "sneaky", "base_url": second_sim.url, "api_key": "k", "capacity": "5"}
    )

    assert response.status_code == 400
    assert db.session.scalars(select(WahaServer).where(WahaServer.name == "sneaky")).first() is None


def test_drain_button_drains_the_server_and_audits_it(admin: Any, admin_client: Any) -> None:
    server_id = default_server().id
    token = csrf_token(admin_client, f"/platform/servers/{server_id}")

    response = admin_client.post(
        f"/platform/servers/{server_id}/drain", data={"csrf_token": token}, follow_redirects=True
    )

    assert "is draining" in response.get_data(as_text=True)
    assert default_server().is_draining is True
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "server.drain")).one()
    assert event.actor_label == admin.email


def test_undrain_button_lets_the_server_take_sessions_again(admin_client: Any) -> None:
    server = default_server()
    fleet.drain_server(server.id, SYSTEM)
    token = csrf_token(admin_client, f"/platform/servers/{server.id}")

    admin_client.post(f"/platform/servers/{server.id}/undrain", data={"csrf_token": token})

    assert default_server().is_draining is False


def test_check_now_stores_fresh_health(admin_client: Any, sim: Any) -> None:
    server_id = default_server().id
    token = csrf_token(admin_client, f"/platform/servers/{server_id}")

    response = admin_client.post(
        f"/platform/servers/{server_id}/check", data={"csrf_token": token}, follow_redirects=True
    )

    assert f"answers: WAHA {sim.settings.version}" in response.get_data(as_text=True)
    assert default_server().health == "ok" and default_server().last_checked_at is not None


def test_settings_change_capacity_and_disable(admin_client: Any) -> None:
    server_id = default_server().id
    token = csrf_token(admin_client, f"/platform/servers/{server_id}")

    admin_client.post(f"/platform/servers/{server_id}/settings", data={"csrf_token": token, "capacity": "7"})

    server = default_server()
    assert server.capacity == 7 and server.is_enabled is False  # the unticked box disables it


def test_settings_refuse_a_capacity_of_zero(admin_client: Any) -> None:
    server_id = default_server().id
    token = csrf_token(admin_client, f"/platform/servers/{server_id}")

    response = admin_client.post(
        f"/platform/servers/{server_id}/settings", data={"csrf_token": token, "capacity": "0", "is_enabled": "y"}
    )

    assert response.status_code == 400
    assert default_server().capacity == 50


def test_server_detail_lists_the_sessions_placed_on_it(admin_client: Any) -> None:
    tenant = make_tenant("detailco", name="Detail Co")
    server = default_server()
    db.session.add(
        WahaSession(
            tenant_id=tenant.id,
            server_id=server.id,
            name="support",
            external_name="t1_support",
            status="WORKING",
            hmac_key="k" * 32,
        )
    )
    db.session.commit()

    page = admin_client.get(f"/platform/servers/{server.id}").get_data(as_text=True)

    assert "Detail Co" in page and "support" in page and "t1_support" in page and "WORKING" in page
    assert '1 <span class="muted">of 50</span>' in page


def test_unknown_server_is_404(admin_client: Any) -> None:
    assert admin_client.get("/platform/servers/999999").status_code == 404
