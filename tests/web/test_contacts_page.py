"""The contacts page: the list with names by the display rule, search by name or number, keyset pages, a link to
each contact's chat in the inbox, tags edited by members who may send, the WhatsApp sync button, and the guards
(another tenant's contact or session is a 404, CSRF, viewers read only)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Contact, utcnow
from portal.services import contacts
from tests.builders import make_tenant, member, new_session, stored_chat, working_session
from tests.helpers import csrf_token, post, text


def contact_of(tenant: Any, number: str = "491709999999", **fields: Any) -> Contact:
    fields.setdefault("tags", [])
    contact = Contact(tenant_id=tenant.id, chat_id=f"{number}@c.us", phone=number, **fields)
    db.session.add(contact)
    db.session.commit()
    return contact


def names_in(body: str) -> list[str]:
    return re.findall(r'<span class="contact-name">([^<]*)</span>', body)


def tags_of(contact: Contact) -> list[str]:
    db.session.expire_all()
    return db.session.get(Contact, contact.id).tags


def test_page_lists_contacts_with_their_details_and_a_link_to_their_chat(owner_client, tenant):
    session = new_session(tenant, "Support")
    at = utcnow()
    anna = contact_of(
        tenant, "491701111111", saved_name="Anna Schmidt", push_name="Anna", lid="8877@lid", tags=["vip"],
        first_message_at=at, last_message_at=at,
    )  # fmt: skip
    contact_of(tenant, "491702222222", push_name="Ben")
    contact_of(tenant, "491703333333")
    chat = stored_chat(session, "491701111111")
    body = text(owner_client.get("/contacts/"))
    assert names_in(body) == ["+49 170 3333333", "Ben", "Anna Schmidt"]  # newest first, names by the display rule
    row = body.split(f'id="contact-{anna.id}"', 1)[1].split("</tr>", 1)[0]
    assert "+49 170 1111111" in row and "8877@lid" in row and 'value="vip"' in row
    assert f'href="/inbox/?chat={chat.id}"' in row and "<time" in row


def test_contacts_are_in_the_main_navigation_after_the_inbox(viewer_client):
    nav = text(viewer_client.get("/contacts/")).split('<nav class="mainnav"', 1)[1].split("</nav>", 1)[0]
    assert nav.index(">Inbox") < nav.index(">Contacts</a>") < nav.index(">Messages</a>")
    assert 'href="/contacts/" aria-current="page"' in nav


@pytest.mark.parametrize("q,expected", [("anna", ["Anna Schmidt"]), ("+49 170 222", ["Ben"]), ("zoe", [])])
def test_search_by_name_or_number(owner_client, tenant, q, expected):
    contact_of(tenant, "491701111111", saved_name="Anna Schmidt")
    contact_of(tenant, "491702222222", push_name="Ben")
    assert names_in(text(owner_client.get("/contacts/", query_string={"q": q}))) == expected


def test_list_is_keyset_paged(owner_client, tenant):
    for n in range(55):
        contact_of(tenant, f"4917000000{n:02d}", push_name=f"Person {n:02d}")
    first = text(owner_client.get("/contacts/"))
    assert len(names_in(first)) == 50 and names_in(first)[0] == "Person 54"
    next_url = re.search(r'<a href="(/contacts/\?cursor=[^"]+)">Next page</a>', first).group(1).replace("&amp;", "&")
    second = text(owner_client.get(next_url))
    assert names_in(second) == [f"Person {n:02d}" for n in range(4, -1, -1)] and "Next page" not in second


def test_a_mangled_page_link_is_refused_in_words(owner_client, tenant):
    contact_of(tenant, push_name="Ana")
    response = owner_client.get("/contacts/", query_string={"cursor": "nope"})
    assert response.status_code == 400 and 'role="alert"' in text(response) and names_in(text(response)) == []


def test_tags_are_trimmed_deduplicated_saved_and_audited(owner_client, tenant):
    contact = contact_of(tenant, push_name="Ana")
    response = post(
        owner_client, f"/contacts/{contact.id}/tags", {"tags": " vip ,Supplier,VIP,, supplier", "q": "ana"},
        page="/contacts/",
    )  # fmt: skip
    assert response.status_code == 303 and response.headers["Location"] == f"/contacts/?q=ana#contact-{contact.id}"
    assert tags_of(contact) == ["vip", "Supplier"]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "contact.tags"))
    assert (event.target_id, event.details["before"], event.details["after"]) == (
        str(contact.id), [], ["vip", "Supplier"]
    )  # fmt: skip
    assert "Tags of Ana saved." in text(owner_client.get(response.headers["Location"]))


@pytest.mark.parametrize(
    "tags,words",
    [(",".join(f"t{n}" for n in range(21)), "at most 20 tags"), ("x" * 33, "at most 32 characters")],
)
def test_too_many_or_too_long_tags_are_refused_in_words(owner_client, tenant, tags, words):
    contact = contact_of(tenant, push_name="Ana", tags=["kept"])
    response = post(owner_client, f"/contacts/{contact.id}/tags", {"tags": tags}, page="/contacts/")
    assert words in text(owner_client.get(response.headers["Location"]))
    assert tags_of(contact) == ["kept"]


def test_tags_without_the_csrf_token_are_refused(owner_client, tenant):
    contact = contact_of(tenant, push_name="Ana")
    assert owner_client.post(f"/contacts/{contact.id}/tags", data={"tags": "vip"}).status_code == 400
    assert tags_of(contact) == []


def test_viewer_sees_tags_but_cannot_edit_them(viewer_client, tenant):
    contact = contact_of(tenant, push_name="Ana", tags=["vip"])
    body = text(viewer_client.get("/contacts/"))
    assert '<span class="badge">vip</span>' in body and 'name="tags"' not in body and "Sync from WhatsApp" not in body
    token = csrf_token(viewer_client, "/inbox/")
    response = viewer_client.post(f"/contacts/{contact.id}/tags", data={"tags": "x", "csrf_token": token})
    assert response.status_code == 403 and tags_of(contact) == ["vip"]


def test_another_tenants_contact_is_not_found_and_not_listed(owner_client, tenant):
    theirs = contact_of(make_tenant("globex", name="Globex"), push_name="Their customer")
    assert "Their customer" not in text(owner_client.get("/contacts/"))
    response = post(owner_client, f"/contacts/{theirs.id}/tags", {"tags": "mine"}, page="/contacts/")
    assert response.status_code == 404 and tags_of(theirs) == []


def test_sync_button_queues_the_import_for_a_working_session(login, tenant, sim, run_jobs):
    session = working_session(tenant, sim, "Support")
    new_session(tenant, "Not linked")
    sim.set_contact(session.external_name, "491701111111", saved_name="Anna Schmidt")
    client = login(member(tenant, "operator"))
    body = text(client.get("/contacts/"))
    assert body.count("Sync from WhatsApp: ") == 1 and f'action="/contacts/sync/{session.id}"' in body
    response = post(client, f"/contacts/sync/{session.id}", page="/contacts/")
    assert response.status_code == 303
    assert "Reading the contacts of “Support” from WhatsApp" in text(client.get(response.headers["Location"]))
    run_jobs()
    assert names_in(text(client.get("/contacts/"))) == ["Anna Schmidt"]
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("contacts.%"))).all()
    assert sorted(actions) == ["contacts.sync", "contacts.synced"]


def test_sync_of_a_session_that_is_not_working_says_why(owner_client, tenant, sim, run_jobs):
    session = new_session(tenant, "Not linked")
    response = post(owner_client, f"/contacts/sync/{session.id}", page="/contacts/")
    assert response.status_code == 303
    assert "The session is not connected to WhatsApp right now" in text(owner_client.get(response.headers["Location"]))
    assert run_jobs() == 0


def test_sync_guards(login, owner_client, tenant, sim):
    session = working_session(tenant, sim, "Support")
    theirs = new_session(make_tenant("globex", name="Globex"), "Theirs")
    assert post(owner_client, f"/contacts/sync/{theirs.id}", page="/contacts/").status_code == 404
    assert owner_client.post(f"/contacts/sync/{session.id}").status_code == 400
    viewer = login(member(tenant, "viewer"))
    assert post(viewer, f"/contacts/sync/{session.id}", page="/inbox/").status_code == 403


def test_clean_tags_rules():
    assert contacts.clean_tags(["  a  b ", "A B", "", "c"]) == ["a b", "c"]
    assert contacts.clean_tags(["x"] * 40) == ["x"]
    assert contacts.clean_tags(["y" * 32]) == ["y" * 32]
