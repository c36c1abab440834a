"""Linking a phone, the /waha route table's part: the QR code, a pairing code and a passkey; with their DTOs.
`portal.api.openapi_routes` puts them into the table."""

from __future__ import annotations

from pydantic import BaseModel

from portal.api import schemas as s
from portal.api.route_table import AUTH, WAHA, ApiRoute

_S = "/waha/sessions/{session_id}"

PAIRING_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET",
        f"{_S}/qr",
        "api.get_qr",
        "Get the QR code",
        "Sessions",
        "sessions:write",
        response=s.QrResponse,
        query=s.ImageQuery,
        image="image/png",
        errors=(400, *AUTH, 404, 409, *WAHA),
        description="Only while the session is SCAN_QR_CODE (409 session_not_ready otherwise). The QR "
        "rotates: fetch it again after expiresIn seconds. ?format=image answers the PNG. Linking a phone "
        "needs the same permission as a pairing code.",
    ),
    ApiRoute(
        "POST",
        f"{_S}/pairing-code",
        "api.request_pairing_code",
        "Request a pairing code",
        "Sessions",
        "sessions:write",
        response=s.PairingCodeResponse,
        body=s.PairingCodeDto,
        errors=(400, *AUTH, 404, 409, 413, *WAHA),
        description="The other way to link: the phone's owner types this code under Linked devices.",
        example={"phoneNumber": "+491701234567"},
    ),
    ApiRoute(
        "GET",
        f"{_S}/passkey",
        "api.get_passkey",
        "Get the passkey step",
        "Sessions",
        "sessions:write",
        response=s.PasskeyStepResponse,
        errors=(*AUTH, 404, 409, *WAHA),
        description="While WhatsApp asks for the linked account's passkey (status PASSKEY_REQUIRED: step "
        "assert, with WAHA's WebAuthn challenge) or for its confirmation code (PASSKEY_CONFIRMATION_REQUIRED: "
        "step confirm, with the code the phone must show); 409 session_not_ready otherwise. The passkey signs "
        "only on https://web.whatsapp.com: sign the challenge there and POST the assertion here.",
    ),
    ApiRoute(
        "POST",
        f"{_S}/passkey",
        "api.submit_passkey",
        "Submit a passkey assertion",
        "Sessions",
        "sessions:write",
        response=s.SessionResponseDto,
        body=s.PasskeyAssertionDto,
        errors=(400, *AUTH, 404, 409, 413, *WAHA),
        description="The assertion of the challenge (navigator.credentials.get(...).toJSON() on "
        "web.whatsapp.com), handed to WAHA. WhatsApp then links the phone, or asks to compare a code first "
        "(GET .../passkey, then POST .../passkey/confirm). 409 session_not_ready unless PASSKEY_REQUIRED.",
        example={
            "id": "q2Vb8Ew0R0mS1l3bZkQw0A",
            "rawId": "q2Vb8Ew0R0mS1l3bZkQw0A",
            "type": "public-key",
            "response": {
                "clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0",
                "authenticatorData": "SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ",
                "signature": "MEUCIQDx",
            },
        },
    ),
    ApiRoute(
        "POST",
        f"{_S}/passkey/confirm",
        "api.confirm_passkey",
        "Confirm a passkey pairing",
        "Sessions",
        "sessions:write",
        response=s.SessionResponseDto,
        errors=(*AUTH, 404, 409, *WAHA),
        description="The phone shows the same code as GET .../passkey: finish linking. 409 session_not_ready "
        "unless PASSKEY_CONFIRMATION_REQUIRED.",
    ),
)

PAIRING_MODELS: tuple[type[BaseModel], ...] = (
    s.PairingCodeDto,
    s.QrResponse,
    s.PairingCodeResponse,
    s.PasskeyAssertionDto,
    s.PasskeyStepResponse,
)
