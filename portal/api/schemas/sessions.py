"""Session DTOs of the /waha API: create, pairing, list and image queries, and the session answers."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from portal.api.schemas.common import (
    NOT_BLANK,
    PHONE_RULE,
    PROXY_SERVER_PATTERN,
    URL_PATTERN,
    URL_RULE,
    Page,
    Request,
    Response,
    check_phone,
    string_rule,
)
from portal.models import SESSION_STATUSES, Engine, SessionStatus
from portal.services.sessions.passkey import B64URL_PATTERN


def _events_schema(schema: dict[str, Any]) -> None:
    from portal.services.sessions import WAHA_EVENTS

    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "array":
            branch["items"] = {"type": "string", "enum": ["*", *sorted(WAHA_EVENTS)]}


# ---- requests -------------------------------------------------------------------------------------------------


class ProxyConfig(Request):
    """The proxy WAHA reaches WhatsApp through."""

    keep_whitespace = frozenset({"username", "password"})

    server: str = Field(
        pattern=PROXY_SERVER_PATTERN,
        examples=["proxy.example.com:3128"],
        description="host:port, optionally with http://, https://, socks4:// or socks5:// in front; the host must be "
        "public (the destination policy of every URL).",
        json_schema_extra={"format": "public-proxy"},
    )
    username: str | None = None
    password: str | None = None


class IgnoreConfig(Request):
    """Events of these chats are not sent."""

    status: bool | None = None
    groups: bool | None = None
    channels: bool | None = None
    broadcast: bool | None = None


class ClientConfig(Request):
    """How the session shows under Linked devices on the phone."""

    deviceName: str | None = None
    browserName: str | None = None


class NowebStoreConfig(Request):
    enabled: bool
    fullSync: bool


class NowebConfig(Request):
    markOnline: bool
    store: NowebStoreConfig | None = None


class WebjsConfig(Request):
    tagsEventsOn: bool | None = None


class GowsStorageConfig(Request):
    messages: bool | None = None
    groups: bool | None = None
    chats: bool | None = None
    labels: bool | None = None


class GowsConfig(Request):
    storage: GowsStorageConfig | None = None


def _metadata_schema(schema: dict[str, Any]) -> None:
    from portal.services.sessions import METADATA_PREFIX

    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "object":
            branch["propertyNames"] = {"not": {"pattern": "^" + re.escape(METADATA_PREFIX)}}


class SessionConfig(Request):
    """WAHA's session config (its SessionConfig) that a tenant may set; null means not set. Webhooks are the
    portal's own: use webhookUrl."""

    metadata: dict[str, str] | None = Field(
        None,
        max_length=20,
        description="Your own labels (string values); keys starting with 'portal.' are reserved.",
        json_schema_extra=_metadata_schema,
    )
    proxy: ProxyConfig | None = None
    debug: bool | None = None
    ignore: IgnoreConfig | None = None
    client: ClientConfig | None = None
    noweb: NowebConfig | None = None
    webjs: WebjsConfig | None = None
    gows: GowsConfig | None = None


class CreateSessionDto(Request):
    """A new WhatsApp session for the caller's tenant."""

    sessionName: str = Field(
        max_length=100,
        pattern=NOT_BLANK,
        description="Name, unique within the tenant (runs of whitespace count as one space).",
        examples=["support"],
    )
    engine: Engine | None = Field(None, description="WAHA engine; the server default when omitted.")
    webhookUrl: str | None = Field(
        None,
        max_length=2048,
        pattern=URL_PATTERN,
        description="Your URL that receives this session's events.",
        examples=["https://example.com/hooks/whatsapp"],
        json_schema_extra=string_rule(format=URL_RULE["format"]),
    )
    webhookEvents: list[str] | None = Field(
        None,
        description='Events forwarded to webhookUrl (WAHA\'s event names, or "*" for all).',
        examples=[["message", "session.status"]],
        json_schema_extra=_events_schema,
    )
    config: SessionConfig | None = Field(None, description="Extra WAHA session config (e.g. metadata, proxy).")

    def config_for_service(self) -> dict[str, Any] | None:
        """The config as the sessions service takes it (keys set to null left out)."""
        return None if self.config is None else self.config.model_dump(exclude_none=True)


class PairingCodeDto(Request):
    """Link the session with a code typed on the phone instead of scanning the QR."""

    phoneNumber: str = Field(
        min_length=6,
        max_length=32,
        examples=["+491701234567"],
        description="Phone number in international form with country code; it must be a valid number of that country.",
        json_schema_extra=string_rule(**PHONE_RULE),
    )

    @field_validator("phoneNumber")
    @classmethod
    def _phone(cls, value: str) -> str:
        if "@" in value:
            raise PydanticCustomError("phone", "Give a phone number, not a chat id.")
        return check_phone(value)


class SessionListQuery(Request):
    status: SessionStatus | None = Field(None, description="Only sessions in this status.")


class ImageQuery(Request):
    format: Literal["json", "image"] = Field("json", description="json (base64 in a JSON body) or image (raw PNG).")


# ---- responses ------------------------------------------------------------------------------------------------


class TimelockDto(Response):
    active: bool = Field(description="WhatsApp refuses messages to new contacts until endsAt (error 463).")
    endsAt: str | None = Field(description="RFC 3339 time the timelock ends.")
    enforcementType: str | None = Field(description="WhatsApp's enforcement type, informational (an open set).")


class CappingDto(Response):
    status: str | None = Field(description="NONE, FIRST_WARNING, SECOND_WARNING or CAPPED (an open set); null unread.")
    totalQuota: float | None = Field(description="New-chat messages allowed this cycle (-1: no cap).")
    usedQuota: float | None
    cycleEnd: str | None = Field(description="RFC 3339 end of the current cycle.")


class NumberHealthDto(Response):
    level: str = Field(description="ok, warning (a capping warning) or limited (CAPPED or an active timelock).")
    newContactsBlockedUntil: str | None = Field(description="RFC 3339; null when new contacts may be messaged.")
    timelock: TimelockDto
    capping: CappingDto
    checkedAt: str | None = Field(description="RFC 3339 time of the last reading.")


class SessionResponseDto(Response):
    id: str = Field(description="Session id in the portal (use it in URLs).")
    name: str
    externalSessionId: str = Field(description="The session's name on its WAHA server.")
    status: str = Field(
        description=f"WAHA's status: {', '.join(SESSION_STATUSES[:-1])} or {SESSION_STATUSES[-1]} (a status a newer "
        "WAHA adds is passed on as it comes)."
    )
    desiredState: str = Field(description="running or stopped: what the portal keeps it at.")
    engine: str | None
    me: dict[str, Any] | None = Field(description="The linked WhatsApp account once WORKING.")
    metadata: dict[str, Any]
    webhookUrl: str | None
    webhookEvents: list[str]
    tenantId: str
    numberHealth: NumberHealthDto = Field(
        description="WhatsApp's limits on the number: a reach-out timelock or new-chat capping (level ok, warning "
        "or limited). While limited, a first message to a new contact is 409 new_contact_limited; replies go out."
    )
    createdAt: datetime
    updatedAt: datetime

    @classmethod
    def of(cls, session: Any) -> SessionResponseDto:
        from portal.services.number_health import describe

        config = session.config or {}
        return cls(
            id=session.id,
            name=session.name,
            externalSessionId=session.external_name,
            status=session.status,
            desiredState=session.desired_state,
            engine=session.engine,
            me=session.me,
            metadata=dict(config.get("metadata") or {}),
            webhookUrl=session.webhook_url,
            webhookEvents=list(session.webhook_events or []),
            tenantId=str(session.tenant_id),
            numberHealth=NumberHealthDto.model_validate(describe(session)),
            createdAt=session.created_at,
            updatedAt=session.updated_at,
        )


class SessionCreatedDto(SessionResponseDto):
    """The create answer: the session plus the secret that signs deliveries to its webhookUrl, shown this once."""

    webhookSecret: str = Field(
        description="Standard Webhooks signing secret (whsec_...) of the deliveries to this "
        "session's webhookUrl. Shown only in this answer (and in a replay with "
        "the same Idempotency-Key); never in GET. Lost: rotate it."
    )

    @classmethod
    def created(cls, session: Any, secret: str) -> SessionCreatedDto:
        return cls(**SessionResponseDto.of(session).model_dump(), webhookSecret=secret)


class WebhookSecretResponse(Response):
    """A session's new signing secret, shown this once; the previous one no longer signs anything."""

    sessionId: str
    webhookSecret: str = Field(
        description="Standard Webhooks signing secret (whsec_...) of the deliveries to the "
        "session's webhookUrl. Shown only in this answer."
    )


class SessionPage(Page[SessionResponseDto]):
    pass


class QrResponse(Response):
    mimetype: str = Field(examples=["image/png"])
    data: str = Field(description="The QR image, base64-encoded.")
    expiresIn: int | None = Field(description="Seconds until WhatsApp rotates this QR.")


class ScreenResponse(Response):
    mimetype: str
    data: str = Field(description="Screenshot, base64-encoded.")


class PairingCodeResponse(Response):
    code: str = Field(
        examples=["ABCD-1234"], description="Type it on the phone: Linked devices > Link with phone number."
    )


_B64URL = B64URL_PATTERN


def _b64url_field(description: str) -> Any:
    return Field(min_length=2, max_length=8192, pattern=_B64URL, description=description)


class PasskeyResponseDataDto(Request):
    clientDataJSON: str = _b64url_field("Base64url clientDataJSON from the authenticator.")
    authenticatorData: str = _b64url_field("Base64url authenticatorData from the authenticator.")
    signature: str = _b64url_field("Base64url signature from the authenticator.")
    userHandle: str | None = Field(
        default=None, min_length=2, max_length=8192, pattern=_B64URL, description="Base64url user handle, if any."
    )


class PasskeyAssertionDto(Request):
    """The browser's answer to the challenge (the result of navigator.credentials.get with the challenge as
    publicKey, as toJSON() writes it), made on https://web.whatsapp.com."""

    id: str = _b64url_field("Credential id.")
    rawId: str = _b64url_field("Base64url raw credential id.")
    type: Literal["public-key"]
    response: PasskeyResponseDataDto


class PasskeyStepResponse(Response):
    status: str = Field(description="PASSKEY_REQUIRED or PASSKEY_CONFIRMATION_REQUIRED.")
    step: Literal["assert", "confirm"] = Field(
        description="assert: sign `challenge` on web.whatsapp.com and POST the assertion; confirm: check that the "
        "phone shows `code`, then POST .../passkey/confirm."
    )
    challenge: dict[str, Any] | None = Field(
        description="WAHA's WebAuthn request options (challenge, timeout, rpId, allowCredentials, userVerification), "
        "base64url-encoded as WAHA gives them; null in the confirm step."
    )
    code: str | None = Field(description="The code the phone must show; null in the assert step.")
