"""Session DTOs of the /waha API: create, pairing, list and image queries, and the session answers."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from portal.api.schemas.common import (
    PHONE_RULE,
    PORT_PATTERN,
    URL_RULE,
    Page,
    Request,
    Response,
    check_recipient,
    string_rule,
)
from portal.models import Engine, SessionStatus


def _events_schema(schema: dict[str, Any]) -> None:
    from portal.services.sessions import WAHA_EVENTS

    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "array":
            branch["items"] = {"type": "string", "enum": ["*", *sorted(WAHA_EVENTS)]}


# A session proxy as services.destinations.clean_proxy takes it: host:port (optionally with a scheme), and the
# credentials in their own fields; the host must also pass the destination policy (a public address).
PROXY_SCHEMA = {
    "type": ["object", "null"],
    "required": ["server"],
    "additionalProperties": False,
    "properties": {
        "server": {
            "type": "string",
            "pattern": r"^((https?|socks[45])://)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252}):" + PORT_PATTERN + "/?$",
            "description": "host:port of the proxy.",
        },
        "username": {"type": ["string", "null"]},
        "password": {"type": ["string", "null"]},
    },
}


def _config_schema(schema: dict[str, Any]) -> None:
    from portal.services.sessions import METADATA_MAX_ENTRIES, METADATA_PREFIX, TENANT_CONFIG_KEYS

    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "object":
            branch["propertyNames"] = {"enum": sorted(TENANT_CONFIG_KEYS)}
            branch["properties"] = {
                "metadata": {
                    "type": "object",
                    "maxProperties": METADATA_MAX_ENTRIES,
                    "propertyNames": {"not": {"pattern": "^" + re.escape(METADATA_PREFIX)}},
                    "additionalProperties": {"type": "string"},
                    "description": f"Your own labels (string values); keys starting with {METADATA_PREFIX!r} are "
                    "reserved.",
                }
            }
            # WAHA's own session config objects (see WAHA's SessionConfig); passed through as given.
            branch["properties"].update(
                {
                    key: {"type": "boolean" if key == "debug" else "object"}
                    for key in TENANT_CONFIG_KEYS
                    if key not in ("metadata", "proxy")
                }
            )
            branch["properties"]["proxy"] = PROXY_SCHEMA


# ---- requests -------------------------------------------------------------------------------------------------


class CreateSessionDto(Request):
    """A new WhatsApp session for the caller's tenant."""

    sessionName: str = Field(
        min_length=1, max_length=100, description="Name, unique within the tenant.", examples=["support"]
    )
    engine: Engine | None = Field(None, description="WAHA engine; the server default when omitted.")
    webhookUrl: str | None = Field(
        None,
        max_length=2048,
        description="Your URL that receives this session's events.",
        examples=["https://example.com/hooks/whatsapp"],
        json_schema_extra=string_rule(**URL_RULE),
    )
    webhookEvents: list[str] | None = Field(
        None,
        description='Events forwarded to webhookUrl (WAHA\'s event names, or "*" for all).',
        examples=[["message", "session.status"]],
        json_schema_extra=_events_schema,
    )
    config: dict[str, Any] | None = Field(
        None, description="Extra WAHA session config (e.g. metadata, proxy).", json_schema_extra=_config_schema
    )

    @field_validator("webhookUrl")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise PydanticCustomError("url", "Must be an http:// or https:// URL.")
        return value


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
        return check_recipient(value)


class SessionListQuery(Request):
    status: SessionStatus | None = Field(None, description="Only sessions in this status.")


class ImageQuery(Request):
    format: Literal["json", "image"] = Field("json", description="json (base64 in a JSON body) or image (raw PNG).")


# ---- responses ------------------------------------------------------------------------------------------------


class SessionResponseDto(Response):
    id: str = Field(description="Session id in the portal (use it in URLs).")
    name: str
    externalSessionId: str = Field(description="The session's name on its WAHA server.")
    status: str = Field(description="STOPPED, STARTING, SCAN_QR_CODE, WORKING or FAILED.")
    desiredState: str = Field(description="running or stopped: what the portal keeps it at.")
    engine: str | None
    me: dict[str, Any] | None = Field(description="The linked WhatsApp account once WORKING.")
    metadata: dict[str, Any]
    webhookUrl: str | None
    webhookEvents: list[str]
    tenantId: str
    createdAt: datetime
    updatedAt: datetime

    @classmethod
    def of(cls, session: Any) -> SessionResponseDto:
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
