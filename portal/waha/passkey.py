"""WAHA's passkey pairing endpoints (2026.7.1+, GOWS): a base of ``WahaClient``.

While a session is ``PASSKEY_REQUIRED`` WAHA holds a WebAuthn challenge for the account's passkey on
``web.whatsapp.com``; the signed assertion goes back to WAHA, and a few pairings end with a confirmation code
compared against the phone (``PASSKEY_CONFIRMATION_REQUIRED``). Outside those statuses WAHA answers 422.
"""

from __future__ import annotations

from typing import Any

from portal.waha.calls import _observed, _segment
from portal.waha.transport import UNSENT_ONLY, WahaTransport


class PasskeyMixin(WahaTransport):
    """Passkey pairing calls of one WAHA server (``WahaClient`` inherits them)."""

    @_observed
    def get_passkey_challenge(self, name: str) -> dict:
        """The pending WebAuthn request options: ``challenge``, ``timeout``, ``rpId``, ``allowCredentials``..."""
        return self._json(self._request("GET", f"/api/{_segment(name)}/auth/passkey/challenge", retry_safe=True))

    @_observed
    def submit_passkey(self, name: str, assertion: dict[str, Any]) -> None:
        """Hand WAHA the assertion (``navigator.credentials.get(...).toJSON()`` made on web.whatsapp.com)."""
        self._request("POST", f"/api/{_segment(name)}/auth/passkey", body=assertion, retry_safe=UNSENT_ONLY)

    @_observed
    def get_passkey_confirmation(self, name: str) -> str:
        """The code to compare with the one the phone shows (``PASSKEY_CONFIRMATION_REQUIRED``)."""
        response = self._request("GET", f"/api/{_segment(name)}/auth/passkey/confirmation", retry_safe=True)
        return self._field(response, "code")

    @_observed
    def confirm_passkey(self, name: str) -> None:
        """Confirm the pairing once the codes matched."""
        self._request("POST", f"/api/{_segment(name)}/auth/passkey/confirm", retry_safe=UNSENT_ONLY)
