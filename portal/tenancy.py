"""Who is acting for which tenant, resolved once per request and cached on `g`.

A browser user acts for the tenant chosen in their cookie session (and must be a member of it); an API
caller acts for the tenant its token or JWT names. Either way views read `g.principal`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Flask, abort, g, redirect, request, session, url_for
from flask_login import current_user

from portal.models import Tenant
from portal.permissions import permissions_for_roles
from portal.services.audit import Actor


@dataclass
class Principal:
    """The caller of this request and what it may do in its tenant."""

    kind: str  # user / token / jwt
    tenant: Tenant
    permissions: frozenset[str]
    actor_id: str
    label: str
    role: str | None = None

    @property
    def key(self) -> str:
        """Stable identity for rate limits."""
        return f"{self.kind}:{self.actor_id}"

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def actor(self) -> Actor:
        """The audit actor for this request."""
        return Actor(
            type="user" if self.kind == "user" else "token",
            id=self.actor_id,
            label=self.label,
            ip=request.remote_addr,
            request_id=getattr(g, "request_id", None),
        )


def request_actor(kind: str = "anonymous", label: str | None = None, actor_id: str | None = None) -> Actor:
    """An audit actor for a request that has no principal yet (sign-in attempts, webhooks)."""
    return Actor(type=kind, id=actor_id, label=label, ip=request.remote_addr, request_id=getattr(g, "request_id", None))


def current_principal() -> Principal | None:
    """The principal of this request, resolving the web user's tenant on first use."""
    if "principal" in g:
        return g.principal
    principal = None
    if current_user and current_user.is_authenticated:
        principal = _user_principal(current_user._get_current_object())
    g.principal = principal
    if principal is not None:
        g.tenant = principal.tenant
    return principal


def _user_principal(user: Any) -> Principal | None:
    from portal.services.tenants import membership_for, memberships_of

    tenant_id = session.get("tenant_id")
    found = getattr(user, "signed_in", None)
    if found is not None and found.user is user and found.tenant_id == tenant_id:
        # The user loader's query already read the membership of this tenant (None when there is none).
        role, tenant = found.role, found.tenant
    else:
        membership = membership_for(user.id, tenant_id) if tenant_id else None
        role, tenant = (membership.role, membership.tenant) if membership is not None else (None, None)
    if role is None or tenant is None or not tenant.is_active:
        memberships = memberships_of(user)
        if not memberships:
            return None
        role, tenant = memberships[0].role, memberships[0].tenant
        session["tenant_id"] = tenant.id
    return Principal(
        kind="user",
        tenant=tenant,
        permissions=permissions_for_roles([role]),
        actor_id=str(user.id),
        label=user.email,
        role=role,
    )


def set_principal(principal: Principal) -> None:
    """Used by the API's bearer check."""
    g.principal = principal
    g.tenant = principal.tenant


def require(permission: str) -> Callable:
    """View decorator: the caller's role must grant `permission` (403 otherwise)."""

    def decorator(view: Callable) -> Callable:
        view.required_permission = permission  # type: ignore[attr-defined]  # read back by the route checks

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                if _owns_scheduled_deletion():
                    return redirect(url_for("admin_privacy.deletions"))  # where the owner can cancel it
                abort(403, "You are not a member of any tenant yet. Ask an admin to invite you.")
            if not principal.can(permission):
                abort(403, "Your role does not allow this.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _owns_scheduled_deletion() -> bool:
    """A signed-in owner whose only tenants are scheduled for deletion (and so inactive)."""
    if not (current_user and current_user.is_authenticated):
        return False
    from portal.services.privacy import scheduled_for_owner

    return bool(scheduled_for_owner(current_user._get_current_object()))


def init_app(app: Flask) -> None:
    @app.context_processor
    def inject_principal() -> dict[str, Any]:
        return {"principal": current_principal() if request else None}
