"""Team rules: invitations by link, role changes and removal, and the tenant always keeping an owner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.mail import outbox
from portal.models import AuditEvent, Invitation, Membership, utcnow
from portal.services import team
from portal.services.errors import Conflict, Forbidden, Invalid, NotFound
from tests.builders import TEST_ACTOR, mailed_link, make_tenant, make_user


def _link(token: str) -> str:
    return f"https://portal.example/invite/{token}"


def _invite(tenant, email="new@example.com", role="operator", actor_role="owner"):
    issued = team.invite_member(tenant, email, role, TEST_ACTOR, actor_role=actor_role, accept_url=_link)
    return issued, mailed_link(issued.mailed_to).rsplit("/", 1)[1]


def test_invite_stores_only_the_token_hash(tenant):
    issued, token = _invite(tenant)
    row = db.session.get(Invitation, issued.invitation.id)
    assert row.token_hash == team.token_digest(token)
    assert token not in row.token_hash


def test_invite_mails_the_link(tenant):
    outbox.clear()
    issued, token = _invite(tenant, email="Mixed.Case@Example.com")
    assert issued.mailed_to == "mixed.case@example.com"
    assert outbox[-1].to == "mixed.case@example.com"
    assert _link(token) in outbox[-1].body


@pytest.mark.parametrize("actor_role,role", [("admin", "owner"), ("operator", "viewer"), ("viewer", "viewer")])
def test_invite_refuses_roles_the_actor_cannot_assign(tenant, actor_role, role):
    with pytest.raises(Forbidden):
        _invite(tenant, role=role, actor_role=actor_role)


def test_invite_refuses_an_existing_member(tenant, owner):
    with pytest.raises(Conflict) as exc:
        _invite(tenant, email=owner.email.upper())
    assert exc.value.code == "already_member"


def test_invite_refuses_a_malformed_address(tenant):
    with pytest.raises(Invalid):
        _invite(tenant, email="not an address")


def test_new_invitation_replaces_the_pending_one(tenant):
    _, first = _invite(tenant)
    _, second = _invite(tenant, role="viewer")
    with pytest.raises(NotFound) as exc:
        team.find_invitation(first)
    assert exc.value.code == "invitation_revoked"
    assert team.find_invitation(second).role == "viewer"


def test_accept_creates_the_account_and_membership(tenant):
    _, token = _invite(tenant, role="viewer")
    user = team.accept_invitation(token, TEST_ACTOR, name="Nia", password="a-long-password")
    assert user.check_password("a-long-password") and user.name == "Nia"
    membership = db.session.scalar(select(Membership).where(Membership.user_id == user.id))
    assert (membership.tenant_id, membership.role) == (tenant.id, "viewer")
    assert user.email_verified_at is not None
    assert user.last_login_at is not None  # signed in with the acceptance: the team page shows when
    created = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.create"))
    assert (created.tenant_id, created.target_id) == (None, str(user.id))
    assert created.details == {"email": "new@example.com", "via": "invitation"}


def test_accept_refuses_a_short_password(tenant):
    _, token = _invite(tenant)
    with pytest.raises(Invalid):
        team.accept_invitation(token, TEST_ACTOR, password="short")
    assert team.find_invitation(token)  # still usable


def test_accept_works_only_once(tenant):
    _, token = _invite(tenant)
    team.accept_invitation(token, TEST_ACTOR, password="a-long-password")
    with pytest.raises(NotFound) as exc:
        team.accept_invitation(token, TEST_ACTOR, password="a-long-password")
    assert exc.value.code == "invitation_used"


def test_accept_refuses_an_expired_invitation(tenant):
    issued, token = _invite(tenant)
    issued.invitation.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    with pytest.raises(NotFound) as exc:
        team.accept_invitation(token, TEST_ACTOR, password="a-long-password")
    assert exc.value.code == "invitation_expired"


def test_accept_attaches_the_signed_in_user(tenant):
    other = make_tenant("other")
    user = make_user(other, "owner", email="both@example.com")
    _, token = _invite(tenant, email="both@example.com", role="admin")
    team.accept_invitation(token, TEST_ACTOR, user=user)
    assert {m.tenant_id: m.role for m in user.memberships} == {other.id: "owner", tenant.id: "admin"}


def test_accept_refuses_a_different_signed_in_user(tenant, owner):
    _, token = _invite(tenant, email="someone@example.com")
    with pytest.raises(Forbidden):
        team.accept_invitation(token, TEST_ACTOR, user=owner)


def test_accept_without_sign_in_refuses_an_existing_account(tenant):
    make_user(None, email="exists@example.com")
    _, token = _invite(tenant, email="exists@example.com")
    with pytest.raises(Conflict) as exc:
        team.accept_invitation(token, TEST_ACTOR, password="a-long-password")
    assert exc.value.code == "account_exists"


def test_invite_and_revoke_are_audited_with_the_address_and_role(tenant):
    issued, _ = _invite(tenant, email="Audit@Example.com", role="viewer")
    team.revoke_invitation(tenant, issued.invitation.id, TEST_ACTOR, actor_role="owner")
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.target_type == "invitation").order_by(AuditEvent.id)
    ).all()
    expected = {"email": "audit@example.com", "role": "viewer"}
    assert [(e.action, e.tenant_id, e.target_id, e.details) for e in events] == [
        ("member.invite", tenant.id, str(issued.invitation.id), expected),
        ("member.invite_revoke", tenant.id, str(issued.invitation.id), expected),
    ]


def test_revoke_of_another_tenants_invitation_is_not_found(tenant):
    issued, _ = _invite(make_tenant("other"))
    with pytest.raises(NotFound):
        team.revoke_invitation(tenant, issued.invitation.id, TEST_ACTOR, actor_role="owner")


def test_last_owner_cannot_be_demoted(tenant, owner):
    with pytest.raises(Conflict) as exc:
        team.change_role(tenant, owner.id, "admin", TEST_ACTOR, actor_role="owner")
    assert exc.value.code == "last_owner"
    assert team.get_member(tenant, owner.id).role == "owner"


def test_last_owner_cannot_be_removed(tenant, owner):
    with pytest.raises(Conflict):
        team.remove_member(tenant, owner.id, TEST_ACTOR, actor_role="owner")
    assert team.get_member(tenant, owner.id)


def test_owner_can_be_demoted_when_another_owner_remains(tenant, owner):
    make_user(tenant, "owner", email="second@example.com")
    team.change_role(tenant, owner.id, "viewer", TEST_ACTOR, actor_role="owner")
    assert team.get_member(tenant, owner.id).role == "viewer"


def test_admin_cannot_change_an_owner(tenant, owner):
    make_user(tenant, "owner", email="second@example.com")
    with pytest.raises(Forbidden):
        team.change_role(tenant, owner.id, "viewer", TEST_ACTOR, actor_role="admin")


def test_admin_cannot_promote_to_owner(tenant):
    operator = make_user(tenant, "operator")
    with pytest.raises(Forbidden):
        team.change_role(tenant, operator.id, "owner", TEST_ACTOR, actor_role="admin")


def test_change_role_of_another_tenants_member_is_not_found(tenant):
    stranger = make_user(make_tenant("other"), "viewer")
    with pytest.raises(NotFound):
        team.change_role(tenant, stranger.id, "admin", TEST_ACTOR, actor_role="owner")


def test_role_change_is_audited(tenant):
    operator = make_user(tenant, "operator")
    team.change_role(tenant, operator.id, "admin", TEST_ACTOR, actor_role="owner")
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "member.role_change"))
    assert event.tenant_id == tenant.id and event.target_id == str(operator.id)
    assert event.details["from"] == "operator" and event.details["role"] == "admin"


def test_removal_keeps_the_account(tenant, owner):
    viewer = make_user(tenant, "viewer")
    team.remove_member(tenant, viewer.id, TEST_ACTOR, actor_role="owner")
    with pytest.raises(NotFound):
        team.get_member(tenant, viewer.id)
    assert db.session.get(type(viewer), viewer.id) is not None


def test_accept_without_a_name_creates_the_account(tenant):
    _, token = _invite(tenant)
    user = team.accept_invitation(token, TEST_ACTOR, name=None, password="a-long-password")  # type: ignore[arg-type]
    assert user.name == "" and user.email == "new@example.com"
