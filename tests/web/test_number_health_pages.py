"""Where the portal shows WhatsApp's limits on a number: session page, sessions list, dashboard."""

from __future__ import annotations

from portal.extensions import db
from portal.services import number_health
from tests.builders import working_session


def test_a_capping_warning_is_shown_on_every_page_that_lists_the_session(owner_client, tenant, sim):
    session = working_session(tenant, sim, "Sales")
    quiet = working_session(tenant, sim, "Support")
    sim.set_capping(session.external_name, "SECOND_WARNING", total=200, used=185)
    number_health.check(session)
    db.session.commit()

    detail = owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    listing = owner_client.get("/sessions/").get_data(as_text=True)
    dashboard = owner_client.get("/").get_data(as_text=True)

    assert 'id="limit-banner"' in detail and "185 of 200 used" in detail
    assert "WhatsApp warns about this number." in detail
    assert listing.count('data-limit="warning"') == 1
    assert "Sales" in dashboard and "Quota warning" in dashboard
    assert 'id="limit-banner"' not in owner_client.get(f"/sessions/{quiet.id}").get_data(as_text=True)


def test_a_number_back_to_normal_shows_nothing(owner_client, tenant, sim):
    session = working_session(tenant, sim, "Sales")
    sim.set_timelock(session.external_name, True)
    number_health.check(session)
    sim.set_timelock(session.external_name, False)
    number_health.check(session)
    db.session.commit()

    assert 'id="limit-banner"' not in owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    assert "data-limit" not in owner_client.get("/sessions/").get_data(as_text=True)
