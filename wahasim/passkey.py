"""Passkey pairing (WAHA 2026.7.1+, GOWS): linking a phone whose account asks for its passkey.

The WAHA side (openapi.json, "Pairing"): while a session is `PASSKEY_REQUIRED`, `GET /api/{s}/auth/passkey/challenge`
answers the WebAuthn request options (`PasskeyChallenge`: `challenge`, `timeout`, `rpId` "web.whatsapp.com",
`allowCredentials`, `userVerification`); `POST /api/{s}/auth/passkey` takes the assertion
(`PasskeyAssertionRequest`: `id`, `rawId`, `type` "public-key", `response` {`clientDataJSON`, `authenticatorData`,
`signature`, `userHandle`?}) and answers 201. Most pairings are then WORKING; some need the code of
`GET /api/{s}/auth/passkey/confirmation` (`{"code"}`, status `PASSKEY_CONFIRMATION_REQUIRED`) checked against the
phone and `POST /api/{s}/auth/passkey/confirm`. Outside those statuses the endpoints answer 422. Each status
change is a `session.status` event whose `data` is the challenge, then `{code}`.

The simulator checks what a real authenticator's answer would prove: the credential is one of the allowed ones
and `clientDataJSON` (base64url JSON) carries the challenge, type "webauthn.get" and origin
https://web.whatsapp.com. The control hook `POST /_sim/sessions/{s}/passkey` makes a session waiting for its QR
(or still starting) ask for a passkey (`{"confirm": true}` adds the confirmation step).

`PasskeyMixin` is part of `Simulator`; every public method takes the simulator's lock.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import secrets
import threading
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import ControlError

PASSKEY_REQUIRED = "PASSKEY_REQUIRED"
PASSKEY_CONFIRMATION_REQUIRED = "PASSKEY_CONFIRMATION_REQUIRED"
RP_ID = "web.whatsapp.com"
ORIGIN = f"https://{RP_ID}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


class PasskeyMixin:
    """The passkey pairing endpoints and control hook of `Simulator`."""

    if TYPE_CHECKING:  # provided by Simulator
        from .settings import Settings

        lock: threading.RLock
        settings: Settings

        def _control_session(self, name: str) -> Any: ...
        def _get(self, name: str) -> Any: ...
        def _set_status(self, s: Any, status: str, data: dict | None = None) -> None: ...
        def _show_qr(self, s: Any) -> None: ...
        def _login(self, s: Any, phone: str, push_name: str | None) -> None: ...

    def _in_status(self, name: str, status: str) -> Any:
        s = self._get(name)
        if s.status != status:
            raise errors.status_mismatch(name, s.status, [status])
        return s

    # ---------------------------------------------------------------- control hook

    def require_passkey(self, name: str, confirm: bool = False, phone: str | None = None) -> dict:
        """The account being linked asks for its passkey instead of taking the QR scan."""
        with self.lock:
            s = self._control_session(name)
            if s.status == "STARTING":
                self._show_qr(s)
            if s.status != "SCAN_QR_CODE":
                raise ControlError(409, f"session '{name}' is {s.status}; a passkey is asked while linking a phone")
            s.run_id += 1  # the QR stops rotating
            s.qr_value, s.code = None, None
            credential = secrets.token_bytes(16)
            s.passkey = {
                "challenge": {
                    "challenge": b64url(secrets.token_bytes(32)),
                    "timeout": 60000,
                    "rpId": RP_ID,
                    "allowCredentials": [{"id": b64url(credential), "type": "public-key", "transports": ["hybrid"]}],
                    "userVerification": "required",
                    "extensions": {},
                },
                "confirm": bool(confirm),
                "code": None,
                "phone": phone or self.settings.auto_scan_phone,
            }
            self._set_status(s, PASSKEY_REQUIRED, data=copy.deepcopy(s.passkey["challenge"]))
            return copy.deepcopy(s.passkey["challenge"])

    # ---------------------------------------------------------------- WAHA API

    def passkey_challenge(self, name: str) -> dict:
        with self.lock:
            return copy.deepcopy(self._in_status(name, PASSKEY_REQUIRED).passkey["challenge"])

    def submit_passkey(self, name: str, body: Any) -> dict:
        with self.lock:
            s = self._in_status(name, PASSKEY_REQUIRED)
            problems = self._assertion_problems(s.passkey["challenge"], body)
            if problems:
                raise errors.validation(problems)
            if s.passkey["confirm"]:
                s.passkey["code"] = f"{secrets.randbelow(10000):04d}"
                self._set_status(s, PASSKEY_CONFIRMATION_REQUIRED, data={"code": s.passkey["code"]})
            else:
                self._finish(s)
            return {}

    def passkey_confirmation(self, name: str) -> dict:
        with self.lock:
            return {"code": self._in_status(name, PASSKEY_CONFIRMATION_REQUIRED).passkey["code"]}

    def confirm_passkey(self, name: str) -> dict:
        with self.lock:
            self._finish(self._in_status(name, PASSKEY_CONFIRMATION_REQUIRED))
            return {}

    def _finish(self, s: Any) -> None:
        phone = s.passkey["phone"]
        s.passkey = None
        self._login(s, phone, None)

    @staticmethod
    def _assertion_problems(challenge: dict, body: Any) -> list[str]:
        """What makes `body` not an assertion of this challenge (WAHA's validation pipe words, one per field)."""
        if not isinstance(body, dict):
            return ["body must be an object"]
        problems = []
        for field in ("id", "rawId"):
            if not isinstance(body.get(field), str) or not body[field]:
                problems.append(f"{field} must be a string")
        if body.get("type") != "public-key":
            problems.append("type must be 'public-key'")
        response = body.get("response")
        if not isinstance(response, dict):
            return [*problems, "response must be an object"]
        for field in ("clientDataJSON", "authenticatorData", "signature"):
            if _unb64url(response.get(field)) is None:
                problems.append(f"response.{field} must be base64url")
        if problems:
            return problems
        allowed = {c["id"] for c in challenge["allowCredentials"]}
        if body["rawId"] not in allowed:
            problems.append("rawId is not a credential this account allows")
        try:
            client_data = json.loads(_unb64url(response["clientDataJSON"]) or b"")
        except ValueError:
            client_data = None
        if not isinstance(client_data, dict):
            return [*problems, "response.clientDataJSON is not JSON"]
        if client_data.get("challenge") != challenge["challenge"]:
            problems.append("response.clientDataJSON does not answer the pending challenge")
        if client_data.get("type") != "webauthn.get" or client_data.get("origin") != ORIGIN:
            problems.append(f"response.clientDataJSON must be a webauthn.get from {ORIGIN}")
        return problems
