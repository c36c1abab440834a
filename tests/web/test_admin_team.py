"""The team page: invite by link, change roles, remove members, withdraw invitations, each within the actor's role."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.mail import outbox
from portal.models import AuditEvent, Invitation, Membership
from portal.services import team
from portal.services.errors import NotFound
from tests.builders import TEST_ACTOR, mailed_link, make_tenant, make_token, member
from tests.helpers import post, text

PAGE = "/admin/team/"


def _invite(client, email="new@example.com", role="operator"):
    return post(client, "/admin/team/invite", {"email": email, "role": role}, page=PAGE)


def _role_of(tenant, user):
    return db.session.scalar(
        select(Membership.role).where(Membership.tenant_id == tenant.id, Membership.user_id == user.id)
    )


@pytest.mark.parametrize("role,status", [("viewer", 403), ("operator", 403), ("admin", 200), ("owner", 200)])
def test_team_page_is_for_admins_and_owners(login, tenant, role, status):
    assert login(member(tenant, role)).get(PAGE).status_code == status


def test_team_page_lists_members_with_roles(login, tenant, owner):
    member(tenant, "viewer", email="vic@example.com")
    body = text(login(owner).get(PAGE))
    assert "vic@example.com" in body and owner.email in body
    assert "No invitations waiting" in body


def test_invite_mails_the_link_and_never_shows_it_to_the_inviter(login, owner):
    outbox.clear()
    client = login(owner)
    response = _invite(client)
    assert response.status_code == 303 and response.headers["Location"] == PAGE
    shown = text(client.get(PAGE))
    link = mailed_link("new@example.com")
    assert "Invitation mailed to new@example.com" in shown
    token = link.rsplit("/", 1)[1]
    assert token not in shown and token not in response.headers["Location"]
    stored = db.session.scalar(select(Invitation))
    assert stored.token_hash == team.token_digest(token)


def test_invite_redirects_so_a_reload_invites_nobody_twice(login, owner):
    outbox.clear()
    client = login(owner)
    response = _invite(client)
    assert response.status_code == 303
    client.get(response.headers["Location"])
    client.get(response.headers["Location"])
    assert len(outbox) == 1 and len(db.session.scalars(select(Invitation)).all()) == 1


def test_invite_whose_mail_fails_invites_nobody(login, owner, app, monkeypatch):
    client = login(owner)
    page = client.get(PAGE)  # the CSRF token, before the mail goes down
    monkeypatch.setitem(app.config, "TESTING", False)
    monkeypatch.setitem(app.config, "MAIL_BACKEND", "smtp")
    monkeypatch.setitem(app.config, "SMTP_URL", "smtp://127.0.0.1:9")  # nothing listens on the discard port
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post(
        "/admin/team/invite", data={"email": "new@example.com", "role": "viewer", "csrf_token": token}
    )
    assert response.status_code == 503
    assert "could not be sent, so nobody was invited" in text(response)
    assert team.list_invitations(owner.memberships[0].tenant) == []
    revoked = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "member.invite_revoke"))
    assert revoked.details == {"email": "new@example.com", "role": "viewer", "reason": "mail_failed"}


def test_invite_address_opened_directly_leads_to_the_form(login, owner):
    response = login(owner).get("/admin/team/invite")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/team/#invite"


def test_invite_offers_admins_no_owner_role(login, tenant):
    body = text(login(member(tenant, "admin")).get(PAGE))
    invite_form = body[body.index('id="invite"') :]
    assert 'value="admin"' in invite_form and 'value="owner"' not in invite_form


def test_admin_inviting_an_owner_by_direct_post_is_refused(login, tenant):
    response = _invite(login(member(tenant, "admin")), role="owner")
    assert response.status_code == 400
    assert db.session.scalar(select(Invitation)) is None


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_invite_by_direct_post_is_forbidden_below_admin(login, tenant, role):
    response = _invite(login(member(tenant, role)))
    assert response.status_code == 403
    assert db.session.scalar(select(Invitation)) is None


def test_invite_of_a_member_is_refused_in_words(login, tenant, owner):
    response = _invite(login(owner), email=owner.email)
    assert response.status_code == 409
    assert "already a member" in text(response)


def test_invite_without_csrf_token_is_rejected(login, owner):
    response = login(owner).post("/admin/team/invite", data={"email": "x@example.com", "role": "viewer"})
    assert response.status_code == 400
    assert db.session.scalar(select(Invitation)) is None


def test_change_role_updates_the_member(login, tenant, owner):
    viewer = member(tenant, "viewer")
    client = login(owner)
    response = post(client, f"/admin/team/{viewer.id}/role", {"role": "operator"}, page=PAGE)
    assert response.status_code == 302
    assert _role_of(tenant, viewer) == "operator"
    assert "is now operator" in text(client.get(PAGE))


def test_change_role_of_the_last_owner_is_refused_in_words(login, tenant, owner):
    response = post(login(owner), f"/admin/team/{owner.id}/role", {"role": "admin"}, page=PAGE)
    assert response.status_code == 409
    assert "at least one owner" in text(response)
    assert _role_of(tenant, owner) == "owner"


def test_admin_sees_no_controls_for_owners(login, tenant, owner):
    body = text(login(member(tenant, "admin")).get(PAGE))
    assert f"/admin/team/{owner.id}/role" not in body
    assert f"/admin/team/{owner.id}/remove" not in body


def test_admin_cannot_demote_an_owner_by_direct_post(login, tenant, owner):
    response = post(login(member(tenant, "admin")), f"/admin/team/{owner.id}/role", {"role": "viewer"}, page=PAGE)
    assert response.status_code in (400, 403)
    assert _role_of(tenant, owner) == "owner"


def test_change_role_of_another_tenants_member_is_not_found(login, owner):
    stranger = member(make_tenant("other"), "viewer")
    response = post(login(owner), f"/admin/team/{stranger.id}/role", {"role": "admin"}, page=PAGE)
    assert response.status_code == 404


def test_remove_asks_for_confirmation_then_removes(login, tenant, owner):
    viewer = member(tenant, "viewer")
    client = login(owner)
    assert f"Remove {viewer.email}?" in text(client.get(f"/admin/team/{viewer.id}/remove"))
    assert _role_of(tenant, viewer) == "viewer"
    response = post(client, f"/admin/team/{viewer.id}/remove", page=PAGE)
    assert response.status_code == 302
    assert _role_of(tenant, viewer) is None


def test_removing_a_member_revokes_the_api_tokens_they_made(login, tenant, owner, client):
    # Offboarding: a member who leaves must not keep API access through a token they made.
    admin = member(tenant, "admin")
    theirs = [make_token(tenant, name=f"{admin.email} {n}", created_by_id=admin.id) for n in range(2)]
    ours = make_token(tenant, name="the owner's", created_by_id=owner.id)
    for secret in (*theirs, ours):  # used once: the process's token cache holds each of them now
        assert client.get("/waha/sessions", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    browser = login(owner)
    assert "The 2 API tokens made by this member stop working." in text(browser.get(f"/admin/team/{admin.id}/remove"))

    assert post(browser, f"/admin/team/{admin.id}/remove", page=PAGE).status_code == 302

    for secret in theirs:
        refused = client.get("/waha/sessions", headers={"Authorization": f"Bearer {secret}"})
        assert refused.status_code == 401
    assert client.get("/waha/sessions", headers={"Authorization": f"Bearer {ours}"}).status_code == 200
    revoked = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "token.revoke")).all()
    assert sorted(e.details["reason"] for e in revoked) == ["member_removed", "member_removed"]
    [removal] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "member.remove"))
    assert removal.details["tokens_revoked"] == 2


def test_remove_of_the_last_owner_is_refused(login, tenant, owner):
    response = post(login(owner), f"/admin/team/{owner.id}/remove", page=PAGE)
    assert response.status_code == 409
    assert _role_of(tenant, owner) == "owner"


@pytest.mark.parametrize("method", ["get", "post"])
def test_remove_of_another_tenants_member_is_not_found(login, owner, method):
    stranger = member(make_tenant("other"), "viewer")
    client = login(owner)
    path = f"/admin/team/{stranger.id}/remove"
    response = client.get(path) if method == "get" else post(client, path, page=PAGE)
    assert response.status_code == 404


def test_withdraw_invitation_stops_its_link(login, tenant, owner):
    issued = team.invite_member(
        tenant,
        "late@example.com",
        "viewer",
        TEST_ACTOR,
        actor_role="owner",
        accept_url=lambda token: f"/invite/{token}",
    )
    client = login(owner)
    assert "late@example.com" in text(client.get(PAGE))
    response = post(client, f"/admin/team/invitations/{issued.invitation.id}/revoke", page=PAGE)
    assert response.status_code == 302
    with pytest.raises(NotFound):
        team.find_invitation(mailed_link("late@example.com").rsplit("/", 1)[1])


@pytest.mark.parametrize("method", ["get", "post"])
def test_withdraw_of_another_tenants_invitation_is_not_found(login, owner, method):
    issued = team.invite_member(
        make_tenant("other"),
        "theirs@example.com",
        "viewer",
        TEST_ACTOR,
        actor_role="owner",
        accept_url=lambda token: f"/invite/{token}",
    )
    client = login(owner)
    path = f"/admin/team/invitations/{issued.invitation.id}/revoke"
    response = client.get(path) if method == "get" else post(client, path, page=PAGE)
    assert response.status_code == 404
    token = mailed_link("theirs@example.com").rsplit("/", 1)[1]
    assert team.find_invitation(token).id == issued.invitation.id


def test_nav_offers_administration_to_managers_only(login, tenant, owner):
    assert 'href="/admin/"' in text(login(owner).get("/"))
    viewer_page = text(login(member(tenant, "viewer")).get("/"))
    assert 'href="/admin/"' not in viewer_page and 'href="/admin/team/"' not in viewer_page


def test_admin_index_opens_the_first_allowed_page(login, tenant, owner):
    response = login(owner).get("/admin/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/team/")


def test_the_only_owner_has_no_remove_or_role_controls(login, tenant, owner):
    body = text(login(owner).get(PAGE))
    assert "the only owner" in body
    assert f"/admin/team/{owner.id}/remove" not in body and f"/admin/team/{owner.id}/role" not in body
