"""Linking a phone whose WhatsApp account asks for its passkey (WAHA 2026.7.1+, GOWS engine).

Instead of taking the QR scan, WhatsApp may ask the account's passkey: the session goes `PASSKEY_REQUIRED` and
WAHA holds a WebAuthn challenge for the relying party `web.whatsapp.com`. A browser signs it only on that origin,
so the portal cannot ask the authenticator itself: it shows the challenge, takes the assertion made on
web.whatsapp.com (`navigator.credentials.get({publicKey}).toJSON()`), checks its shape and hands it to WAHA.
Some pairings then show a code (`PASSKEY_CONFIRMATION_REQUIRED`) to compare with the phone before confirming.

Who may do this is who may link a phone (permissions.LINK_PHONE); every step is audited without its content.
"""

from __future__ import annotations

import json
import re
from typing import Any

from portal.i18n import N_, N_f
from portal.models import Tenant
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid
from portal.services.sessions.reading import _client, get_session
from portal.services.sessions.status import apply_status
from portal.services.waha_errors import map_waha_error
from portal.waha import errors as waha_errors

REQUIRED = "PASSKEY_REQUIRED"
CONFIRMATION = "PASSKEY_CONFIRMATION_REQUIRED"
PASSKEY_STATUSES = (REQUIRED, CONFIRMATION)
ASSERTION_MAX_CHARS = 16_384
_FIELD_MAX = 8_192
# Base64url as an authenticator's toJSON() writes it (no padding), or padded: whole groups of four characters, then
# a last group of two or three (never one).
B64URL_PATTERN = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}(?:==)?|[A-Za-z0-9_-]{3}=?)?$"
_B64URL = re.compile(B64URL_PATTERN)


def _not_ready(status: str, expected: str) -> Conflict:
    return Conflict(
        N_f("The session is %(status)s; it must be %(expected)s for this.", status=status, expected=expected),
        code="session_not_ready",
        details={"status": status, "expected": [expected]},
    )


def _b64url(value: Any, field: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > _FIELD_MAX:
        raise Invalid.field(field, N_("Give the base64url value the authenticator returned."))
    if not _B64URL.fullmatch(value):
        raise Invalid.field(field, N_("This is not base64url."))
    return value


def clean_assertion(raw: Any) -> dict[str, Any]:
    """The assertion as WAHA takes it (`PasskeyAssertionRequest`), from a dict or the JSON text a person pasted."""
    if isinstance(raw, str):
        if len(raw) > ASSERTION_MAX_CHARS:
            raise Invalid.field(
                "assertion",
                N_f(
                    "The assertion must be at most %(ASSERTION_MAX_CHARS)s characters.",
                    ASSERTION_MAX_CHARS=ASSERTION_MAX_CHARS,
                ),
            )
        try:
            raw = json.loads(raw)
        except ValueError:
            raise Invalid.field("assertion", N_("Paste the JSON the browser gave on web.whatsapp.com.")) from None
    if not isinstance(raw, dict):
        raise Invalid.field("assertion", N_("The assertion is a JSON object with id, rawId, type and response."))
    if raw.get("type") != "public-key":
        raise Invalid.field("type", N_('The credential type must be "public-key".'))
    response = raw.get("response")
    if not isinstance(response, dict):
        raise Invalid.field("response", N_("Give the authenticator's response object."))
    cleaned_response = {
        "clientDataJSON": _b64url(response.get("clientDataJSON"), "response.clientDataJSON"),
        "authenticatorData": _b64url(response.get("authenticatorData"), "response.authenticatorData"),
        "signature": _b64url(response.get("signature"), "response.signature"),
    }
    user_handle = _b64url(response.get("userHandle"), "response.userHandle", required=False)
    if user_handle is not None:
        cleaned_response["userHandle"] = user_handle
    return {
        "id": _b64url(raw.get("id"), "id"),
        "rawId": _b64url(raw.get("rawId"), "rawId"),
        "type": "public-key",
        "response": cleaned_response,
    }


def passkey_step(tenant: Tenant, session: Any) -> dict[str, Any] | None:
    """What the person linking the phone needs now: {"step": "assert", "challenge": {...}} while WAHA waits for
    the passkey, {"step": "confirm", "code": "1234"} while it waits for the codes to be compared; None in any
    other status. WAHA errors are mapped as everywhere (the session may have moved on meanwhile)."""
    if session.status not in PASSKEY_STATUSES:
        return None
    client = _client(session)
    try:
        if session.status == REQUIRED:
            return {"step": "assert", "challenge": client.get_passkey_challenge(session.external_name)}
        return {"step": "confirm", "code": client.get_passkey_confirmation(session.external_name)}
    except waha_errors.WahaError as exc:
        raise _mapped(session, exc) from exc


def _mapped(session: Any, exc: waha_errors.WahaError) -> Exception:
    if isinstance(exc, waha_errors.WahaSessionNotReady) and exc.session_status:
        from portal.extensions import db

        apply_status(session, exc.session_status, source="pairing")
        db.session.commit()
    return map_waha_error(exc, session)


def submit_passkey(tenant: Tenant, session_id: Any, assertion: Any, actor: Actor) -> Any:
    """Hand WAHA the passkey assertion of a PASSKEY_REQUIRED session; returns the session."""
    session = get_session(tenant, session_id)
    cleaned = clean_assertion(assertion)
    if session.status != REQUIRED:
        raise _not_ready(session.status, REQUIRED)
    try:
        _client(session).submit_passkey(session.external_name, cleaned)
    except waha_errors.WahaError as exc:
        raise _mapped(session, exc) from exc
    audit.record(
        tenant.id,
        "session.passkey_submit",
        actor,
        target_type="session",
        target_id=session.id,
        details={"credential_suffix": cleaned["rawId"][-6:]},
        commit=True,
    )
    return session


def confirm_passkey(tenant: Tenant, session_id: Any, actor: Actor) -> Any:
    """Confirm a pairing whose code matched the phone's (PASSKEY_CONFIRMATION_REQUIRED); returns the session."""
    session = get_session(tenant, session_id)
    if session.status != CONFIRMATION:
        raise _not_ready(session.status, CONFIRMATION)
    try:
        _client(session).confirm_passkey(session.external_name)
    except waha_errors.WahaError as exc:
        raise _mapped(session, exc) from exc
    audit.record(tenant.id, "session.passkey_confirm", actor, target_type="session", target_id=session.id, commit=True)
    return session
