"""Passkeys (WebAuthn): registering them, and signing in with one, as the second step or without a password.

Every ceremony's challenge is kept server-side in Redis for CHALLENGE_TTL seconds under a random ticket the
browser's session holds, and is taken out (GETDEL) when the answer comes: a challenge is good once. The
signature counter must go up on every use (a cloned authenticator shows up as a counter that does not).
The relying party (id and origin) is decided by the caller from configuration or the request.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from portal.extensions import db, redis_store
from portal.i18n import N_, N_f
from portal.models import User, WebAuthnCredential, utcnow
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Invalid, NotFound, Unauthorized

CHALLENGE_TTL = 120  # seconds a ceremony may take
MAX_PASSKEYS = 20
FAILED = N_("The passkey could not be checked. Try again.")


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: the RP id (a host name) and the origin the browser must report."""

    id: str
    origin: str
    name: str = "WAHA Portal"


def _key(ticket: str) -> str:
    return f"portal:webauthn:{ticket}"


def _store(purpose: str, challenge: bytes, user_id: int | None) -> str:
    ticket = secrets.token_urlsafe(24)
    value = json.dumps({"p": purpose, "c": bytes_to_base64url(challenge), "u": user_id})
    redis_store.client.set(_key(ticket), value, ex=CHALLENGE_TTL)
    return ticket


def _take(ticket: str | None, purpose: str, user_id: int | None) -> bytes:
    raw = redis_store.client.getdel(_key(ticket)) if isinstance(ticket, str) and ticket else None
    data = json.loads(raw) if raw else None
    if not isinstance(data, dict) or data.get("p") != purpose or data.get("u") != user_id:
        raise Invalid(N_("The passkey request expired or was already used. Try again."), code="passkey_challenge")
    return base64url_to_bytes(data["c"])


def _handle(user: User) -> bytes:
    if not user.webauthn_handle:
        user.webauthn_handle = bytes_to_base64url(secrets.token_bytes(32))
        db.session.commit()
    return base64url_to_bytes(user.webauthn_handle)


def list_for(user: User) -> list[WebAuthnCredential]:
    """The user's passkeys, oldest first."""
    stmt = select(WebAuthnCredential).where(WebAuthnCredential.user_id == user.id).order_by(WebAuthnCredential.id)
    return list(db.session.scalars(stmt))


def _descriptors(rows: list[WebAuthnCredential]) -> list[PublicKeyCredentialDescriptor]:
    out = []
    for row in rows:
        transports = []
        for name in row.transports or []:
            try:
                transports.append(AuthenticatorTransport(name))
            except ValueError:
                continue
        out.append(PublicKeyCredentialDescriptor(id=base64url_to_bytes(row.credential_id), transports=transports))
    return out


def registration_options(user: User, rp: RelyingParty) -> tuple[str, str]:
    """Options for navigator.credentials.create() (JSON) and the ticket of their challenge."""
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=_handle(user),
        user_name=user.email,
        user_display_name=user.name or user.email,
        exclude_credentials=_descriptors(list_for(user)),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    return options_to_json(options), _store("register", options.challenge, user.id)


def register(user: User, credential: Any, name: str, ticket: str | None, rp: RelyingParty, actor: Actor) -> Any:
    """Check the browser's answer to `registration_options` and keep the new passkey under `name`."""
    name = (name or "").strip()[:100] or "Passkey"
    challenge = _take(ticket, "register", user.id)
    if len(list_for(user)) >= MAX_PASSKEYS:
        raise Invalid(
            N_f("You can keep up to %(count)s passkeys. Remove one first.", count=MAX_PASSKEYS), code="passkey_limit"
        )
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id, expected_origin=rp.origin
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        audit.record(
            None, "user.passkey_add_failed", actor, target_type="user", target_id=user.id,
            details={"reason": str(exc)[:200]}, commit=True,
        )  # fmt: skip
        raise Invalid(FAILED, code="passkey_invalid") from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if db.session.scalar(select(WebAuthnCredential.id).where(WebAuthnCredential.credential_id == credential_id)):
        raise Invalid(N_("This passkey is already registered."), code="passkey_exists")
    transports = credential.get("response", {}).get("transports") if isinstance(credential, dict) else None
    row = WebAuthnCredential(
        user_id=user.id,
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=name,
        transports=[str(t)[:20] for t in transports][:8] if isinstance(transports, list) else [],
        created_at=utcnow(),
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        None, "user.passkey_added", actor, target_type="user", target_id=user.id,
        details={"passkey_id": row.id, "name": name},
    )  # fmt: skip
    db.session.commit()
    return row


def authentication_options(rp: RelyingParty, user: User | None = None) -> tuple[str, str]:
    """Options for navigator.credentials.get() and their ticket: for `user`'s passkeys (the second step), or
    for any discoverable passkey (sign-in without a password, user None, the authenticator must verify the
    person)."""
    options = generate_authentication_options(
        rp_id=rp.id,
        allow_credentials=_descriptors(list_for(user)) if user is not None else [],
        user_verification=UserVerificationRequirement.PREFERRED if user else UserVerificationRequirement.REQUIRED,
    )
    purpose = "second_step" if user is not None else "passwordless"
    return options_to_json(options), _store(purpose, options.challenge, user.id if user else None)


def authenticate(credential: Any, ticket: str | None, rp: RelyingParty, actor: Actor, user: User | None = None) -> User:
    """The user whose passkey answered `authentication_options`; Unauthorized when it does not check out.

    With `user` (the second step) the passkey must be theirs; without (no password) it must be discoverable and
    have verified the person, and it names its owner."""
    purpose = "second_step" if user is not None else "passwordless"
    challenge = _take(ticket, purpose, user.id if user else None)
    cred_id = credential.get("id") if isinstance(credential, dict) else None
    row = (
        db.session.scalar(select(WebAuthnCredential).where(WebAuthnCredential.credential_id == cred_id))
        if isinstance(cred_id, str) and len(cred_id) <= 1400
        else None
    )
    owner = db.session.get(User, row.user_id) if row is not None else None
    reason = None
    if row is None or owner is None or (user is not None and owner.id != user.id):
        reason = "unknown passkey"
    elif user is None:
        handle = (credential.get("response") or {}).get("userHandle")
        if not handle or handle != owner.webauthn_handle:
            reason = "user handle does not match"
    if reason is None and row is not None:
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=rp.id,
                expected_origin=rp.origin,
                credential_public_key=row.public_key,
                credential_current_sign_count=row.sign_count,
                require_user_verification=user is None,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            reason = str(exc)[:200] or type(exc).__name__
    if reason is not None or row is None or owner is None:
        who = owner or user
        audit.record(
            None, "auth.second_factor_failed", actor, target_type="user" if who else None,
            target_id=who.id if who else None,
            details={"method": "passkey" if user else "passkey_signin", "reason": reason},
            commit=True,
        )  # fmt: skip
        raise Unauthorized(FAILED, code="passkey_invalid")
    row.sign_count = verified.new_sign_count
    row.last_used_at = utcnow()
    db.session.commit()
    return owner


def get(user: User, passkey_id: int) -> WebAuthnCredential:
    """One of the user's passkeys; NotFound for anyone else's."""
    row = db.session.scalar(
        select(WebAuthnCredential).where(WebAuthnCredential.id == passkey_id, WebAuthnCredential.user_id == user.id)
    )
    if row is None:
        raise NotFound(N_("No such passkey."), code="passkey_not_found")
    return row


def delete(user: User, passkey_id: int, actor: Actor) -> WebAuthnCredential:
    """Remove one of the user's passkeys; NotFound for anyone else's. The caller checked re-authentication."""
    row = get(user, passkey_id)
    db.session.delete(row)
    audit.record(
        None, "user.passkey_removed", actor, target_type="user", target_id=user.id,
        details={"passkey_id": passkey_id, "name": row.name},
    )  # fmt: skip
    db.session.commit()
    return row
