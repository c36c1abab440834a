"""A tenant's team: invitations by mailed link, role changes and removal, always keeping an owner.

The invitation link goes to the invited address by mail and nowhere else: it is never shown to the inviter. So
an account made by accepting it belongs to whoever reads that mailbox, and its address counts as verified.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.i18n import gettext as _
from portal.mail import send_mail
from portal.models import Invitation, Membership, Tenant, User, get_for_tenant, utcnow
from portal.permissions import ASSIGNABLE_BY, ROLES
from portal.services import audit, inbox, tokens
from portal.services.audit import Actor
from portal.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from portal.services.tenants import check_password_strength, get_user_by_email, normalize_email

log = logging.getLogger(__name__)

INVITATION_DAYS = 7


class MailUnavailable(ServiceError):
    """The invitation mail could not be sent; the invitation was withdrawn again."""

    status = 503
    code = "mail_unavailable"


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    mailed_to: str  # the link went there, and only there (only its token's sha256 is stored)


def token_digest(token: str) -> str:
    """The stored form of an invitation token."""
    return hashlib.sha256(token.encode()).hexdigest()


def assignable_roles(actor_role: str | None) -> list[str]:
    """Roles an actor with `actor_role` may hand out, in the order of ROLES."""
    allowed = ASSIGNABLE_BY.get(actor_role or "", set())
    return [role for role in ROLES if role in allowed]


def _check_assignable(actor_role: str | None, role: str) -> None:
    if role not in ROLES:
        raise Invalid.field("role", N_f("Role must be one of %(value)s.", value=", ".join(ROLES)))
    if role not in ASSIGNABLE_BY.get(actor_role or "", set()):
        raise Forbidden(N_f("Your role cannot hand out the %(role)s role.", role=role), code="role_not_assignable")


def list_members(tenant: Tenant) -> list[Membership]:
    """The tenant's memberships with their users, by email."""
    stmt = select(Membership).join(User).where(Membership.tenant_id == tenant.id).order_by(User.email)
    return list(db.session.scalars(stmt))


def list_invitations(tenant: Tenant) -> list[Invitation]:
    """Invitations of the tenant that can still be accepted, newest first."""
    stmt = (
        select(Invitation)
        .where(
            Invitation.tenant_id == tenant.id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > utcnow(),
        )
        .order_by(Invitation.id.desc())
    )
    return list(db.session.scalars(stmt))


def _check_seats(tenant: Tenant, *, accepting: bool = False) -> None:
    """The plan's team seats (services.quotas): nothing of the refused change is kept."""
    from portal.services import quotas

    try:
        quotas.check_seats(tenant, accepting=accepting)
    except quotas.QuotaExceeded:
        db.session.rollback()
        raise


def invite_member(
    tenant: Tenant,
    email: str,
    role: str,
    actor: Actor,
    *,
    actor_role: str | None,
    accept_url: Callable[[str], str],
    invited_by_id: int | None = None,
) -> IssuedInvitation:
    """Invite an address to the tenant with a role the actor may assign, mailing the link to that address only.

    A new invitation to the same address replaces the pending one, so only the latest link works. When the mail
    cannot be sent the invitation is withdrawn and MailUnavailable raised: nobody else may carry the link."""
    email = normalize_email(email)
    _check_assignable(actor_role, role)
    already = db.session.scalar(
        select(Membership.id).join(User).where(Membership.tenant_id == tenant.id, func.lower(User.email) == email)
    )
    if already:
        raise Conflict(
            N_f("%(email)s is already a member of %(name)s.", email=email, name=tenant.name), code="already_member"
        )
    now = utcnow()
    for pending in db.session.scalars(
        select(Invitation).where(
            Invitation.tenant_id == tenant.id,
            func.lower(Invitation.email) == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
    ):
        pending.revoked_at = now
    db.session.flush()
    _check_seats(tenant)
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        tenant_id=tenant.id,
        email=email,
        role=role,
        token_hash=token_digest(token),
        invited_by_id=invited_by_id,
        expires_at=now + timedelta(days=INVITATION_DAYS),
    )
    db.session.add(invitation)
    db.session.flush()
    _audit_invitation("member.invite", invitation, actor)
    db.session.commit()
    if not _mail_invitation(tenant, invitation, accept_url(token), actor):
        invitation.revoked_at = utcnow()
        _audit_invitation("member.invite_revoke", invitation, actor, reason="mail_failed")
        db.session.commit()
        raise MailUnavailable(
            N_f(
                "The invitation mail to %(email)s could not be sent, so nobody was invited. "
                "Try again in a few minutes.",
                email=email,
            ),
            retry_after=60,
        )
    return IssuedInvitation(invitation=invitation, mailed_to=email)


def _audit_invitation(action: str, invitation: Invitation, actor: Actor, **extra: str) -> None:
    details = {"email": invitation.email, "role": invitation.role, **extra}
    audit.record(
        invitation.tenant_id, action, actor, target_type="invitation", target_id=invitation.id, details=details
    )


def _mail_invitation(tenant: Tenant, invitation: Invitation, url: str, actor: Actor) -> bool:
    # In the inviter's language: the invited person has no account, so no language of their own yet.
    inviter = actor.label or _("A team member")
    body = _(
        "%(inviter)s invited you to join %(tenant)s on WAHA Portal as %(role)s.\n\n"
        "Accept the invitation here (the link works once and expires in %(days)s days):\n%(url)s\n\n"
        "If you did not expect this, you can ignore this mail.",
        inviter=inviter,
        tenant=tenant.name,
        role=invitation.role,
        days=INVITATION_DAYS,
        url=url,
    )
    try:
        send_mail(invitation.email, _("Join %(tenant)s on WAHA Portal", tenant=tenant.name), body)
    except Exception:
        log.exception("could not mail invitation %s", invitation.id)
        return False
    return True


def get_invitation(tenant: Tenant, invitation_id: int) -> Invitation:
    """One invitation of this tenant by id, or NotFound (also for other tenants' invitations)."""
    invitation = get_for_tenant(db.session, Invitation, tenant.id, invitation_id)
    if invitation is None:
        raise NotFound(N_("No such invitation."), code="invitation_not_found")
    return invitation


def revoke_invitation(tenant: Tenant, invitation_id: int, actor: Actor, *, actor_role: str | None) -> Invitation:
    """Withdraw a pending invitation of this tenant; its link stops working."""
    invitation = get_invitation(tenant, invitation_id)
    _check_assignable(actor_role, invitation.role)
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = utcnow()
        _audit_invitation("member.invite_revoke", invitation, actor)
        db.session.commit()
    return invitation


def find_invitation(token: str, *, lock: bool = False) -> Invitation:
    """The invitation a link's token opens; NotFound with a reason people understand otherwise."""
    stmt = select(Invitation).where(Invitation.token_hash == token_digest(token or ""))
    if lock:
        stmt = stmt.with_for_update()
    invitation = db.session.scalar(stmt)
    if invitation is None:
        raise NotFound(
            N_("This invitation link is not valid. Check that you copied all of it."), code="invitation_not_found"
        )
    if invitation.accepted_at is not None:
        raise NotFound(N_("This invitation was already accepted. Sign in to continue."), code="invitation_used")
    if invitation.revoked_at is not None:
        raise NotFound(
            N_("This invitation was withdrawn. Ask the person who invited you for a new one."),
            code="invitation_revoked",
        )
    if invitation.expires_at <= utcnow():
        raise NotFound(
            N_("This invitation has expired. Ask the person who invited you for a new one."), code="invitation_expired"
        )
    return invitation


def tenant_of(invitation: Invitation) -> Tenant:
    """The tenant an invitation opens."""
    return db.session.get_one(Tenant, invitation.tenant_id)


def join(invitation: Invitation, user: User, actor: Actor) -> Membership:
    """Make `user` a member as the invitation says and mark it used; the caller commits."""
    membership = db.session.scalar(
        select(Membership).where(Membership.tenant_id == invitation.tenant_id, Membership.user_id == user.id)
    )
    if membership is None:
        _check_seats(tenant_of(invitation), accepting=True)
        membership = Membership(tenant_id=invitation.tenant_id, user_id=user.id, role=invitation.role)
        db.session.add(membership)
    invitation.accepted_at = utcnow()
    audit.record(
        invitation.tenant_id,
        "member.join",
        actor,
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "role": membership.role, "invitation_id": invitation.id},
    )
    return membership


def pending_invitations_for(email: str) -> list[Invitation]:
    """Every usable invitation addressed to `email`, across tenants."""
    stmt = select(Invitation).where(
        func.lower(Invitation.email) == email.strip().lower(),
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > utcnow(),
    )
    return list(db.session.scalars(stmt))


def create_invited_user(email: str, name: str, actor: Actor, *, via: str, oidc_subject: str | None = None) -> User:
    """A new account for the address an invitation went to, counted as verified (the invitation link or the
    identity provider proved the mailbox); added, flushed and audited as user.create, not committed."""
    user = User(email=email, name=name[:200], oidc_subject=oidc_subject, email_verified_at=utcnow())
    db.session.add(user)
    db.session.flush()
    audit.record(
        None, "user.create", actor, target_type="user", target_id=user.id, details={"email": email, "via": via}
    )
    return user


def accept_invitation(
    token: str, actor: Actor, *, user: User | None = None, name: str = "", password: str | None = None
) -> User:
    """Accept an invitation: attach the signed-in `user`, or create an account with `password`.

    A new account's address counts as verified: the link only ever went to that mailbox."""
    invitation = find_invitation(token, lock=True)
    existing = get_user_by_email(invitation.email)
    if user is not None:
        if user.email.lower() != invitation.email.lower():
            raise Forbidden(
                N_f(
                    "This invitation is for %(email)s, but you are signed in as %(email2)s. "
                    "Sign out and open the link again.",
                    email=invitation.email,
                    email2=user.email,
                ),
                code="invitation_other_user",
            )
    elif existing is not None:
        raise Conflict(
            N_f("An account for %(email)s already exists. Sign in to accept the invitation.", email=invitation.email),
            code="account_exists",
        )
    else:
        check_password_strength(password or "", invitation.email)
        user = create_invited_user(invitation.email, (name or "").strip(), actor, via="invitation")
        user.set_password(password or "")
        user.last_login_at = utcnow()  # the new account is signed in with the acceptance (web/account.py)
    join(invitation, user, actor)
    db.session.commit()
    return user


def get_member(tenant: Tenant, user_id: int) -> Membership:
    """The membership of `user_id` in this tenant, or NotFound (also for other tenants' members)."""
    membership = db.session.scalar(
        select(Membership).where(Membership.tenant_id == tenant.id, Membership.user_id == user_id)
    )
    if membership is None:
        raise NotFound(N_("No such member."), code="member_not_found")
    return membership


def _ensure_another_owner(tenant: Tenant, membership: Membership) -> None:
    # Lock the owners' rows so two admins demoting the last two owners at once cannot both succeed.
    owners = list(
        db.session.scalars(
            select(Membership.id).where(Membership.tenant_id == tenant.id, Membership.role == "owner").with_for_update()
        )
    )
    if not [owner_id for owner_id in owners if owner_id != membership.id]:
        raise Conflict(N_("A tenant needs at least one owner. Make someone else an owner first."), code="last_owner")


def change_role(tenant: Tenant, user_id: int, role: str, actor: Actor, *, actor_role: str | None) -> Membership:
    """Give a member another role; both the old and the new role must be ones the actor may assign."""
    membership = get_member(tenant, user_id)
    _check_assignable(actor_role, role)
    if membership.role not in ASSIGNABLE_BY.get(actor_role or "", set()):
        raise Forbidden(
            N_f("Your role cannot change members with the %(role)s role.", role=membership.role),
            code="role_not_assignable",
        )
    if membership.role == role:
        return membership
    if membership.role == "owner":
        _ensure_another_owner(tenant, membership)
    previous = membership.role
    membership.role = role
    audit.record(
        tenant.id,
        "member.role_change",
        actor,
        target_type="user",
        target_id=user_id,
        details={"email": membership.user.email, "from": previous, "role": role},
    )
    db.session.commit()
    return membership


def remove_member(tenant: Tenant, user_id: int, actor: Actor, *, actor_role: str | None) -> None:
    """Remove a member from the tenant (the account stays); the last owner cannot be removed. The API tokens the
    member made for this tenant are revoked with it, in the same transaction."""
    membership = get_member(tenant, user_id)
    if membership.role not in ASSIGNABLE_BY.get(actor_role or "", set()):
        raise Forbidden(
            N_f("Your role cannot remove members with the %(role)s role.", role=membership.role),
            code="role_not_assignable",
        )
    if membership.role == "owner":
        _ensure_another_owner(tenant, membership)
    email, role = membership.user.email, membership.role
    db.session.delete(membership)
    inbox.unassign_member(tenant.id, user_id)  # chats are assigned to members only
    revoked = tokens.revoke_created_by(tenant, user_id, actor)
    audit.record(
        tenant.id,
        "member.remove",
        actor,
        target_type="user",
        target_id=user_id,
        details={"email": email, "role": role, "tokens_revoked": len(revoked)},
    )
    db.session.commit()
