"""Importing a session's contacts from WhatsApp through the simulator: saved and push names land in contacts
without overwriting what event processing wrote, the list is read page by page, the work runs as a job, and
every request and outcome is audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Contact
from portal.services import contacts_sync
from portal.services.errors import Conflict, NotFound
from tests.builders import TEST_ACTOR, make_tenant, new_session, working_session


@pytest.fixture
def working(tenant: Any, sim: Any) -> Any:
    return working_session(tenant, sim, "Support")


def _contacts(tenant: Any) -> dict[str, tuple[str | None, str | None]]:
    rows = db.session.scalars(select(Contact).where(Contact.tenant_id == tenant.id))
    return {c.chat_id: (c.saved_name, c.push_name) for c in rows}


def _actions(tenant: Any) -> list[tuple[str, str | None, dict]]:
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant.id).order_by(AuditEvent.id))
    return [(e.action, e.actor_type, e.details) for e in events if e.action.startswith("contacts.")]


def test_sync_imports_saved_and_push_names_as_a_job(tenant, sim, working, run_jobs):
    sim.set_contact(working.external_name, "491701111111", saved_name="Anna Schmidt", push_name="Anna")
    sim.set_contact(working.external_name, "491702222222", push_name="Ben")
    sim.set_contact(working.external_name, "1234567890@lid", push_name="Linked Lea")

    contacts_sync.request_sync(tenant, working.id, TEST_ACTOR)
    assert _contacts(tenant) == {}  # the click only queues the work
    run_jobs()

    assert _contacts(tenant) == {
        "491701111111@c.us": ("Anna Schmidt", "Anna"),
        "491702222222@c.us": (None, "Ben"),
        "1234567890@lid": (None, "Linked Lea"),
    }
    lea = db.session.scalar(select(Contact).where(Contact.chat_id == "1234567890@lid"))
    assert (lea.lid, lea.phone) == ("1234567890@lid", None)
    assert _actions(tenant) == [
        ("contacts.sync", "system", {"session": "Support"}),
        ("contacts.synced", "system", {"read": 3, "imported": 3}),
    ]


def test_sync_keeps_what_event_processing_wrote_and_fills_only_what_is_empty(tenant, sim, working, run_jobs):
    db.session.add_all(
        [
            Contact(tenant_id=tenant.id, chat_id="491701111111@c.us", push_name="Anna from a message", tags=["vip"]),
            Contact(tenant_id=tenant.id, chat_id="491702222222@c.us", saved_name="  ", tags=[]),
        ]
    )
    db.session.commit()
    sim.set_contact(working.external_name, "491701111111", saved_name="Anna Schmidt", push_name="Anna WA")
    sim.set_contact(working.external_name, "491702222222", saved_name="Ben Brown", push_name="Ben")

    contacts_sync.request_sync(tenant, working.id, TEST_ACTOR)
    run_jobs()

    assert _contacts(tenant) == {
        "491701111111@c.us": ("Anna Schmidt", "Anna from a message"),
        "491702222222@c.us": ("Ben Brown", "Ben"),
    }
    anna = db.session.scalar(select(Contact).where(Contact.chat_id == "491701111111@c.us"))
    assert anna.tags == ["vip"]


def test_sync_reads_the_list_page_by_page(tenant, sim, working, run_jobs, waha_requests, monkeypatch):
    monkeypatch.setattr(contacts_sync, "SYNC_PAGE", 2)
    for n in range(5):
        sim.set_contact(working.external_name, f"4917000000{n}", push_name=f"Person {n}")

    contacts_sync.request_sync(tenant, working.id, TEST_ACTOR)
    run_jobs()

    assert sorted(name for _, name in _contacts(tenant).values()) == [f"Person {n}" for n in range(5)]
    assert waha_requests.count("GET", "/api/contacts/all") == 3


def test_sync_skips_groups_and_entries_without_an_id(tenant, app):
    rows = [
        contacts_sync.contact_row(tenant.id, entry, None)
        for entry in ({"id": "120363025246125486@g.us", "name": "Team"}, {"name": "no id"}, "junk", {"id": {}})
    ]
    assert rows == [None, None, None, None]


def test_failed_sync_is_audited_with_the_reason(tenant, sim, working, run_jobs):
    sim.set_contact(working.external_name, "491701111111", push_name="Anna")
    contacts_sync.request_sync(tenant, working.id, TEST_ACTOR)
    sim.fail_next(20, status=503)
    run_jobs()

    assert _contacts(tenant) == {}
    action, actor, details = _actions(tenant)[-1]
    assert (action, actor, details["read"], details["reason"]) == ("contacts.sync_failed", "system", 0, "unavailable")


def test_sync_needs_a_working_session(tenant, sim, run_jobs):
    session = new_session(tenant, "Not linked")
    with pytest.raises(Conflict) as caught:
        contacts_sync.request_sync(tenant, session.id, TEST_ACTOR)
    assert caught.value.code == "session_not_ready"
    assert run_jobs() == 0 and _actions(tenant) == []


def test_another_tenants_session_is_not_found(tenant, sim, working):
    with pytest.raises(NotFound):
        contacts_sync.request_sync(make_tenant("globex", name="Globex"), working.id, TEST_ACTOR)
