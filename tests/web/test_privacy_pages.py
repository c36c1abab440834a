"""The data protection pages: a contact's data page (export, erase after typing the number), Administration >
Data & privacy (retention, the tenant's export, its deletion), the owner's cancel page and the platform's view."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Contact, Message, Tenant, TenantExport
from portal.services import privacy
from tests.builders import make_tenant, make_user, member, new_session, stored_message
from tests.helpers import post, text

PERSON = "491709999999"
CHAT = f"{PERSON}@c.us"


@pytest.fixture
def contact(tenant):
    session = new_session(tenant, "Support")
    row = Contact(tenant_id=tenant.id, chat_id=CHAT, phone=PERSON, push_name="Ada", tags=[])
    db.session.add(row)
    db.session.commit()
    stored_message(tenant, session, chat_id=CHAT, body="hello")
    return row


def _messages() -> int:
    return db.session.scalar(select(func.count()).select_from(Message).where(Message.chat_id == CHAT)) or 0


def _page(contact) -> str:
    return f"/contacts/{contact.id}/data"


@pytest.mark.parametrize("role,status", [("viewer", 403), ("operator", 403), ("admin", 200), ("owner", 200)])
def test_contact_data_page_is_for_owners_and_admins(login, tenant, contact, role, status):
    response = login(member(tenant, role)).get(_page(contact))

    assert response.status_code == status
    if status == 200:
        assert "Ada" in text(response) and "+49 170 9999999" in text(response)


def test_another_tenants_contact_page_is_not_found(login, contact):
    other = make_tenant("globex", name="Globex")

    assert login(make_user(other, "owner", email="o@globex.example.com")).get(_page(contact)).status_code == 404


def test_export_from_the_contact_page_downloads_a_zip(login, owner, contact):
    client = login(owner)

    response = post(client, f"/contacts/{contact.id}/export", page=_page(contact))

    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert [m["body"] for m in json.loads(archive.read("messages.json"))] == ["hello"]


def test_erase_with_another_number_typed_erases_nothing(login, owner, contact):
    response = post(login(owner), f"/contacts/{contact.id}/erase", {"confirm": "+49 170 0000000"}, page=_page(contact))

    assert response.status_code == 400 and "Type the number exactly" in text(response)
    assert _messages() == 1


def test_erase_after_typing_the_number_leaves_nothing(login, owner, contact):
    client = login(owner)

    response = post(client, f"/contacts/{contact.id}/erase", {"confirm": "+49 170 9999999"}, page=_page(contact))

    assert response.status_code == 303
    assert _messages() == 0 and db.session.scalar(select(func.count()).select_from(Contact)) == 0
    assert "was erased" in text(client.get("/contacts/"))


def test_operator_cannot_erase(login, tenant, contact):
    client = login(member(tenant, "operator"))

    response = post(client, f"/contacts/{contact.id}/erase", {"confirm": PERSON}, page="/contacts/")

    assert response.status_code == 403 and _messages() == 1


def test_media_retention_above_the_platform_limit_is_refused_in_words(login, owner):
    page = "/admin/settings/"
    values = {"send_rate_per_minute": "30", "retention_messages_days": "90", "retention_events_days": "14"}

    response = post(login(owner), page, {**values, "retention_media_days": "400"}, page=page)

    assert response.status_code == 400 and "at most 90 days" in text(response)


def test_tenant_export_is_requested_built_and_downloaded(login, tenant, owner, contact):
    client = login(owner)
    assert post(client, "/admin/privacy/exports", page="/admin/privacy/").status_code == 303
    export = db.session.scalar(select(TenantExport))

    pending = text(client.get("/admin/privacy/"))
    assert 'hx-get="/admin/privacy/exports"' in pending  # the list follows the build by itself
    assert client.get("/admin/privacy/exports").status_code == 200
    privacy.build_export(export.id)

    page = text(client.get("/admin/privacy/"))
    fragment = client.get("/admin/privacy/exports")
    response = client.get(f"/admin/privacy/exports/{export.id}/download")

    assert fragment.status_code == 286 and "Download" in text(fragment)  # ready: the refresh stops
    assert "Download" in page and "hx-get" not in page.split('id="exports"')[1].split(">")[0]
    assert response.status_code == 200
    assert "messages.json" in zipfile.ZipFile(io.BytesIO(response.get_data())).namelist()


def test_admin_cannot_ask_for_the_tenants_deletion(login, tenant):
    client = login(member(tenant, "admin"))

    assert "Delete this tenant" not in text(client.get("/admin/privacy/"))
    response = post(client, "/admin/privacy/deletion", {"confirm": tenant.slug}, page="/admin/privacy/")
    assert response.status_code == 403


def test_owner_schedules_the_deletion_and_cancels_it(login, tenant, owner):
    client = login(owner)

    response = post(client, "/admin/privacy/deletion", {"confirm": tenant.slug}, page="/admin/privacy/")

    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.id).is_active is False
    landing = client.get("/contacts/")  # no active tenant left: the owner lands where the deletion is cancelled
    assert landing.status_code == 302 and landing.headers["Location"].endswith("/admin/privacy/deletions")
    page = text(client.get("/admin/privacy/deletions"))
    assert "Scheduled for deletion on" in page
    assert (
        post(client, f"/admin/privacy/deletions/{tenant.id}/cancel", page="/admin/privacy/deletions").status_code == 303
    )
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.id).is_active is True


def test_platform_admin_sees_the_limits_and_cancels_a_deletion(login, tenant, owner):
    from tests.builders import TEST_ACTOR

    privacy.request_deletion(tenant, TEST_ACTOR, tenant.slug)
    admin = make_user(None, email="root@example.com", is_platform_admin=True)
    client = login(admin)

    page = text(client.get("/platform/tenants"))

    assert "scheduled for deletion on" in page and "90 days" in page
    assert post(client, f"/platform/tenants/{tenant.id}/cancel-deletion", page="/platform/tenants").status_code == 303
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.id).deletion_scheduled_for is None


def test_platform_admin_cannot_just_activate_a_tenant_scheduled_for_deletion(login, tenant):
    from tests.builders import TEST_ACTOR

    privacy.request_deletion(tenant, TEST_ACTOR, tenant.slug)
    client = login(make_user(None, email="root@example.com", is_platform_admin=True))

    response = post(client, f"/platform/tenants/{tenant.id}/active", {"active": "1"}, page="/platform/tenants")

    assert response.status_code == 302
    assert "cancel the deletion" in text(client.get(response.headers["Location"]))
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.id).is_active is False
