"""The platform admin area: tenants list, create, deactivate, members; refused to everyone else."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.mail import outbox
from portal.models import Invitation, Tenant
from tests.builders import PASSWORD, mailed_link, make_tenant, make_user, member, recovery_code
from tests.helpers import post, text


@pytest.fixture
def root(tenant):
    """A platform admin (also an owner of acme, as operators of the platform usually are)."""
    return make_user(tenant, "owner", email="root@example.com", is_platform_admin=True)


def _tenant(slug):
    db.session.expire_all()
    return db.session.scalar(select(Tenant).where(Tenant.slug == slug))


@pytest.mark.parametrize(
    "path",
    ["/platform/tenants", "/platform/tenants/new", "/platform/tenants/{id}", "/platform/tenants/{id}/deactivate"],
)
def test_platform_pages_are_refused_to_tenant_owners(login, tenant, owner, path):
    response = login(owner).get(path.format(id=tenant.id))
    assert response.status_code == 403


@pytest.mark.parametrize(
    "path,data",
    [
        ("/platform/tenants/new", {"name": "Evil", "slug": "evil", "max_sessions": "5"}),
        ("/platform/tenants/{id}/active", {"active": "0"}),
        ("/platform/tenants/{id}/invite", {"email": "me@example.com", "role": "owner"}),
    ],
)
def test_platform_forms_are_refused_to_tenant_owners(login, tenant, owner, path, data):
    response = post(login(owner), path.format(id=tenant.id), data)
    assert response.status_code == 403
    assert _tenant("acme").is_active and _tenant("evil") is None
    assert db.session.scalar(select(Invitation)) is None


def test_platform_pages_send_anonymous_visitors_to_sign_in(client):
    response = client.get("/platform/tenants")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_nav_shows_platform_only_to_platform_admins(login, tenant, owner, root):
    assert 'href="/platform/"' not in text(login(owner).get("/admin/team/"))
    assert 'href="/platform/"' in text(login(root).get("/admin/team/"))


def test_tenants_list_shows_counts_and_status(login, tenant, root):
    other = make_tenant("globex", name="Globex")
    other.is_active = False
    db.session.commit()
    body = text(login(root).get("/platform/tenants"))
    assert "Acme" in body and "Globex" in body and "deactivated" in body
    assert "0 of 10" in body


def test_create_tenant_with_an_owner_invitation(login, root):
    outbox.clear()
    client = login(root)
    response = post(
        client,
        "/platform/tenants/new",
        {"name": "Initech", "slug": "initech", "max_sessions": "3", "owner_email": "boss@initech.example.com"},
        page="/platform/tenants/new",
    )
    assert response.status_code == 303
    tenant = _tenant("initech")
    assert tenant.max_sessions == 3
    shown = client.get(response.headers["Location"])
    link = mailed_link("boss@initech.example.com")
    assert "Tenant Initech created." in text(shown)
    assert "Invitation mailed to boss@initech.example.com" in text(shown)
    assert link.rsplit("/", 1)[1] not in text(shown)
    assert db.session.scalar(select(Invitation.role).where(Invitation.tenant_id == tenant.id)) == "owner"


def test_create_tenant_redirects_so_a_reload_creates_and_invites_nothing(login, root):
    outbox.clear()
    client = login(root)
    response = post(
        client,
        "/platform/tenants/new",
        {"name": "Initech", "slug": "initech", "max_sessions": "3", "owner_email": "boss@initech.example.com"},
        page="/platform/tenants/new",
    )
    location = response.headers["Location"]
    client.get(location)
    again = client.get(location)
    assert again.status_code == 200 and "Initech" in text(again)
    assert len(outbox) == 1


def test_create_tenant_without_an_owner_opens_the_tenant_page(login, root):
    response = post(
        login(root),
        "/platform/tenants/new",
        {"name": "Initech", "slug": "initech", "max_sessions": "3"},
        page="/platform/tenants/new",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/platform/tenants/{_tenant('initech').id}"


def test_create_tenant_with_a_taken_slug_is_refused_in_words(login, root):
    response = post(
        login(root),
        "/platform/tenants/new",
        {"name": "Acme 2", "slug": "acme", "max_sessions": "3"},
        page="/platform/tenants/new",
    )
    assert response.status_code == 409
    assert "already exists" in text(response)


def test_create_tenant_with_a_bad_slug_is_refused_next_to_the_field(login, root):
    response = post(
        login(root),
        "/platform/tenants/new",
        {"name": "Bad", "slug": "-Bad Slug-", "max_sessions": "3"},
        page="/platform/tenants/new",
    )
    assert response.status_code == 400
    assert 'id="slug-error"' in text(response)


def test_create_tenant_without_csrf_token_is_rejected(login, root):
    response = login(root).post("/platform/tenants/new", data={"name": "X", "slug": "x", "max_sessions": "3"})
    assert response.status_code == 400
    assert _tenant("x") is None


def test_tenant_detail_lists_members(login, tenant, owner, root):
    member(tenant, "viewer", email="vic@example.com")
    body = text(login(root).get(f"/platform/tenants/{tenant.id}"))
    assert "vic@example.com" in body and owner.email in body


def test_unknown_tenant_is_not_found(login, root):
    assert login(root).get("/platform/tenants/999999").status_code == 404


def test_deactivate_asks_first_then_locks_members_out(login, app, tenant, owner, root):
    client = login(root)
    assert "Deactivate Acme?" in text(client.get(f"/platform/tenants/{tenant.id}/deactivate"))
    response = post(client, f"/platform/tenants/{tenant.id}/active", {"active": "0"}, page="/platform/tenants")
    assert response.status_code == 302
    assert not _tenant("acme").is_active
    assert login(owner, app.test_client()).get("/").status_code == 403


def test_reactivate_brings_the_tenant_back(login, tenant, root):
    tenant.is_active = False
    db.session.commit()
    post(login(root), f"/platform/tenants/{tenant.id}/active", {"active": "1"}, page="/platform/tenants")
    assert _tenant("acme").is_active


def test_platform_admin_invites_any_role(login, tenant, root):
    response = post(
        login(root),
        f"/platform/tenants/{tenant.id}/invite",
        {"email": "co@example.com", "role": "owner"},
        page=f"/platform/tenants/{tenant.id}",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/platform/tenants/{tenant.id}"
    assert db.session.scalar(select(Invitation.role).where(Invitation.email == "co@example.com")) == "owner"


def test_platform_invite_address_opened_directly_leads_to_the_tenant(login, tenant, root):
    response = login(root).get(f"/platform/tenants/{tenant.id}/invite")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/platform/tenants/{tenant.id}#invite"


def test_platform_admin_of_no_tenant_lands_on_the_platform_area(client, ctx):
    admin = make_user(None, email="ops@example.com", is_platform_admin=True)
    response = post(client, "/login", {"email": admin.email, "password": PASSWORD}, page="/login")
    assert response.headers["Location"] == "/login/two-factor"  # the platform area always requires a second factor
    response = post(client, "/login/two-factor", {"code": recovery_code(admin)}, page="/login/two-factor")
    assert response.headers["Location"] == "/platform/"
