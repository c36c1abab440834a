"""DTOs of the /waha API: what integrators send and what they get back.

The same pydantic models validate requests, shape responses and generate the OpenAPI document
(`portal.api.openapi`), so the docs cannot drift from the code. Request models reject unknown fields.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from portal.inputs import MAX_YEAR, MIN_YEAR
from portal.models import ENGINES, SESSION_STATUSES
from portal.services import recipients
from portal.services.errors import Invalid
from portal.services.forwarding import DELIVERY_STATUSES
from portal.services.media import media_kind

MESSAGE_STATUSES = ("PENDING", "SERVER", "DEVICE", "READ", "PLAYED", "ERROR")
MEDIA_KINDS = ("image", "document", "audio", "video")
MAX_TEXT = 4096
MAX_PAGE = 200

# What the server enforces, stated in the OpenAPI document so generated clients send valid requests.
# A phone number in international form (+, 00 or bare country code; spaces, dots, dashes and brackets allowed), or
# a WhatsApp chat id. The number must also be a valid number of its country (checked with libphonenumber).
PHONE_PATTERN = r"^(\+|00)?[1-9][0-9 ().-]{4,30}$"
CHAT_ID_PATTERN = recipients.CHAT_ID_PATTERN
RECIPIENT_PATTERN = f"({PHONE_PATTERN})|({CHAT_ID_PATTERN})"
# A pattern cannot say which numbers a country's numbering plan has: the document names that rule as a format
# (`phone`: a valid number of its country; `whatsapp-recipient`: such a number or a chat id) beside the pattern.
PHONE_RULE = {"pattern": PHONE_PATTERN, "format": "phone"}
RECIPIENT_RULE = {"pattern": RECIPIENT_PATTERN, "format": "whatsapp-recipient"}
# Standard base64 with its padding, as the server decodes it (strictly).
BASE64_PATTERN = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
# Cursors are opaque URL-safe base64 without padding, as nextCursor gives them.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
# http(s), a host name or IPv4 address, an optional port (1-65535), then any path/query without spaces.
PORT_PATTERN = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL_PATTERN = r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:" + PORT_PATTERN + r")?([/?][^\s]*)?$"
# Dates and times of filters lie in the years MIN_YEAR..MAX_YEAR (1900-9998).
YEAR_PATTERN = r"^(19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"


def string_rule(**rule: Any) -> Any:
    """json_schema_extra that states `rule` (pattern, ...) on the string branch of a possibly nullable field."""
    def apply(schema: dict[str, Any]) -> None:
        for branch in schema.get("anyOf", [schema]):
            if branch.get("type") == "string":
                branch.update(rule)

    return apply


RECIPIENT_DOC = ("Phone number in international form with country code (e.g. +491701234567; it must be a valid "
                 "number of that country), or a chat id ending in @c.us, @g.us or @lid.")


class Request(BaseModel):
    """Base of every request body and query: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_recipient(value: str) -> str:
    """A phone number in international form (the rule of services.recipients); chat ids (with "@") are checked by
    the messages service, which knows which kinds WAHA accepts."""
    value = value.strip()
    if "@" in value:
        return value
    if not recipients.looks_like_phone(value):
        raise PydanticCustomError(
            "phone", "Not a phone number: use international format with country code, e.g. +491701234567.")
    if recipients.parse_phone(value) is None:
        raise PydanticCustomError(
            "phone", "Not a valid phone number: use international format with country code, e.g. +491701234567.")
    return value


def _events_schema(schema: dict[str, Any]) -> None:
    from portal.services.sessions import WAHA_EVENTS

    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "array":
            branch["items"] = {"type": "string", "enum": ["*", *sorted(WAHA_EVENTS)]}


def _config_schema(schema: dict[str, Any]) -> None:
    from portal.services.sessions import METADATA_MAX_ENTRIES, METADATA_PREFIX, TENANT_CONFIG_KEYS

    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "object":
            branch["propertyNames"] = {"enum": sorted(TENANT_CONFIG_KEYS)}
            branch["properties"] = {"metadata": {
                "type": "object", "maxProperties": METADATA_MAX_ENTRIES,
                "propertyNames": {"not": {"pattern": "^" + re.escape(METADATA_PREFIX)}},
                "additionalProperties": {"type": "string"},
                "description": f"Your own labels (string values); keys starting with {METADATA_PREFIX!r} are "
                               "reserved."}}
            # WAHA's own session config objects (see WAHA's SessionConfig); passed through as given.
            branch["properties"].update({key: {"type": "boolean" if key == "debug" else "object"}
                                         for key in TENANT_CONFIG_KEYS if key != "metadata"})


# ---- requests -------------------------------------------------------------------------------------------------


class CreateSessionDto(Request):
    """A new WhatsApp session for the caller's tenant."""

    sessionName: str = Field(min_length=1, max_length=100, description="Name, unique within the tenant.",
                             examples=["support"])
    engine: Literal[ENGINES] | None = Field(None, description="WAHA engine; the server default when omitted.")  # type: ignore[valid-type]
    webhookUrl: str | None = Field(None, max_length=2048, description="Your URL that receives this session's events.",
                                   examples=["https://example.com/hooks/whatsapp"],
                                   json_schema_extra=string_rule(pattern=URL_PATTERN))
    webhookEvents: list[str] | None = Field(None, description="Events forwarded to webhookUrl (WAHA's event names, "
                                                        "or \"*\" for all).",
                                            examples=[["message", "session.status"]],
                                            json_schema_extra=_events_schema)
    config: dict[str, Any] | None = Field(None, description="Extra WAHA session config (e.g. metadata, proxy).",
                                          json_schema_extra=_config_schema)

    @field_validator("webhookUrl")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise PydanticCustomError("url", "Must be an http:// or https:// URL.")
        return value


class MediaDto(Request):
    """A file to send, by URL or inline as base64 (exactly one of url or data; data needs a mimetype)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"oneOf": [
        {"title": "by URL", "required": ["url"], "properties": {"url": {"type": "string"}}},
        {"title": "inline", "required": ["data", "mimetype"],
         "properties": {"data": {"type": "string"}, "mimetype": {"type": "string"}}},
    ]})

    type: Literal[MEDIA_KINDS] = Field(description="image, document, audio or video.")  # type: ignore[valid-type]
    url: str | None = Field(None, max_length=2048, description="Public URL WAHA downloads the file from.",
                            json_schema_extra=string_rule(pattern=URL_PATTERN))
    data: str | None = Field(None, description="The file, base64-encoded (instead of url).",
                             json_schema_extra=string_rule(contentEncoding="base64", pattern=BASE64_PATTERN))
    mimetype: str | None = Field(None, max_length=127, examples=["image/jpeg"])
    filename: str | None = Field(None, max_length=255)
    caption: str | None = Field(None, max_length=MAX_TEXT)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise PydanticCustomError("url", "Must be an http:// or https:// URL.")
        return value

    @field_validator("data")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise PydanticCustomError("base64", "Must be base64-encoded file content.") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "MediaDto":
        if (self.url is None) == (self.data is None):
            raise PydanticCustomError("media_source", "Give exactly one of url or data.", {"field": "media.url"})
        if self.data is not None and not self.mimetype:
            raise PydanticCustomError("mimetype", "A mimetype is required with inline data.",
                                      {"field": "media.mimetype"})
        return self

    def for_service(self) -> dict[str, Any]:
        """The media dict `services.messages.send_message` takes."""
        media: dict[str, Any] = {"kind": self.type}
        for key in ("url", "data", "mimetype", "filename", "caption"):
            value = getattr(self, key)
            if value is not None:
                media[key] = value
        return media


class SendMessageDto(Request):
    """A text or media message to one chat."""

    # text, media or both: stated in the document as well as checked below
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["text"], "properties": {"text": {"type": "string"}}},
        {"required": ["media"], "properties": {"media": {"type": "object"}}},
    ]})

    to: str = Field(min_length=3, max_length=160, description=RECIPIENT_DOC, examples=["+491701234567"],
                    json_schema_extra=RECIPIENT_RULE)
    text: str | None = Field(None, min_length=1, max_length=MAX_TEXT, examples=["Hello from the portal"],
                             description="The message, or the caption when media is given (not only spaces: "
                                         "leading and trailing spaces are dropped).",
                             json_schema_extra=string_rule(pattern=r"\S"))
    metadata: dict[str, Any] | None = Field(None, description="Your own data, stored with the message.")
    media: MediaDto | None = Field(None, description="A file to send (image, document, audio or video).")
    replyTo: str | None = Field(None, max_length=255, description="WhatsApp id of the message answered.")

    @field_validator("to")
    @classmethod
    def _recipient(cls, value: str) -> str:
        return check_recipient(value)

    @model_validator(mode="after")
    def _has_content(self) -> "SendMessageDto":
        if self.text is None and self.media is None:
            raise PydanticCustomError("content", "Give text, media or both.", {"field": "text"})
        return self


class PairingCodeDto(Request):
    """Link the session with a code typed on the phone instead of scanning the QR."""

    phoneNumber: str = Field(min_length=6, max_length=32, examples=["+491701234567"],
                             description="Phone number in international form with country code; it must be a "
                                         "valid number of that country.",
                             json_schema_extra=PHONE_RULE)

    @field_validator("phoneNumber")
    @classmethod
    def _phone(cls, value: str) -> str:
        if "@" in value:
            raise PydanticCustomError("phone", "Give a phone number, not a chat id.")
        return check_recipient(value)


class MediaUploadForm(Request):
    """The form fields beside the uploaded `file` of POST .../send/media."""

    to: str = Field(min_length=3, max_length=160, description=RECIPIENT_DOC, examples=["+491701234567"],
                    json_schema_extra=RECIPIENT_RULE)
    caption: str | None = Field(None, max_length=MAX_TEXT)
    type: Literal[MEDIA_KINDS] | None = Field(None, description="Defaults from the file's mimetype.")  # type: ignore[valid-type]
    replyTo: str | None = Field(None, max_length=255)

    @field_validator("to")
    @classmethod
    def _recipient(cls, value: str) -> str:
        return check_recipient(value)


class SessionListQuery(Request):
    status: Literal[SESSION_STATUSES] | None = Field(None, description="Only sessions in this status.")  # type: ignore[valid-type]


class ImageQuery(Request):
    format: Literal["json", "image"] = Field("json", description="json (base64 in a JSON body) or image (raw PNG).")


class MessageListQuery(Request):
    direction: Literal["in", "out"] | None = Field(None, description="in (received) or out (sent).")
    status: Literal[MESSAGE_STATUSES] | None = None  # type: ignore[valid-type]
    chatId: str | None = Field(None, max_length=128, description="Only this chat (e.g. 491701234567@c.us).")
    q: str | None = Field(None, max_length=200, description="Text search in the message body.")
    since: datetime | None = Field(None, description="Created at or after (ISO 8601, years 1900-9998).",
                                   json_schema_extra=string_rule(pattern=YEAR_PATTERN))
    until: datetime | None = Field(None, description="Created before (ISO 8601, years 1900-9998).",
                                   json_schema_extra=string_rule(pattern=YEAR_PATTERN))
    cursor: str | None = Field(None, max_length=200, pattern=CURSOR_PATTERN,
                               description="nextCursor of the previous page, as given (opaque).")
    limit: int = Field(50, ge=1, le=MAX_PAGE, description="Page size.")

    @field_validator("since", "until")
    @classmethod
    def _calendar(cls, value: datetime | None) -> datetime | None:
        if value is not None and not MIN_YEAR <= value.year <= MAX_YEAR:
            raise PydanticCustomError("date_range", f"Give a date between the years {MIN_YEAR} and {MAX_YEAR}.")
        return value


class TenantMessageListQuery(MessageListQuery):
    sessionId: str | None = Field(None, max_length=36, description="Only this session's messages.")


class DeliveryListQuery(Request):
    endpointId: int | None = Field(None, ge=1, le=2**31 - 1, description="Only attempts to this webhook endpoint.")
    status: Literal[DELIVERY_STATUSES] | None = Field(  # type: ignore[valid-type]
        None, description="pending, succeeded, failed or dead.")
    cursor: str | None = Field(None, max_length=200, pattern=CURSOR_PATTERN,
                               description="nextCursor of the previous page, as given (opaque).")
    limit: int = Field(50, ge=1, le=MAX_PAGE, description="Page size.")


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
    def of(cls, session: Any) -> "SessionResponseDto":
        config = session.config or {}
        return cls(
            id=session.id, name=session.name, externalSessionId=session.external_name, status=session.status,
            desiredState=session.desired_state, engine=session.engine, me=session.me,
            metadata=dict(config.get("metadata") or {}), webhookUrl=session.webhook_url,
            webhookEvents=list(session.webhook_events or []), tenantId=str(session.tenant_id),
            createdAt=session.created_at, updatedAt=session.updated_at,
        )


class SessionCreatedDto(SessionResponseDto):
    """The create answer: the session plus the secret that signs deliveries to its webhookUrl, shown this once."""

    webhookSecret: str = Field(description="Standard Webhooks signing secret (whsec_...) of the deliveries to this "
                                           "session's webhookUrl. Shown only in this answer (and in a replay with "
                                           "the same Idempotency-Key); never in GET. Lost: rotate it.")

    @classmethod
    def created(cls, session: Any, secret: str) -> SessionCreatedDto:
        return cls(**SessionResponseDto.of(session).model_dump(), webhookSecret=secret)


class WebhookSecretResponse(Response):
    """A session's new signing secret, shown this once; the previous one no longer signs anything."""

    sessionId: str
    webhookSecret: str = Field(description="Standard Webhooks signing secret (whsec_...) of the deliveries to the "
                                           "session's webhookUrl. Shown only in this answer.")


class MediaInfo(Response):
    kind: str | None = Field(description="image, document, audio or video.")
    mimetype: str | None
    filename: str | None
    caption: str | None
    size: int | None = Field(description="Bytes, when known.")
    status: str | None = Field(description="Received files: pending (being fetched), stored, unavailable or refused.")
    url: str | None = Field(description="Where the portal serves the stored file (GET with your bearer token); "
                                        "null until it is stored.")


class MessageResponse(Response):
    id: int = Field(description="Message id in the portal.")
    messageId: str | None = Field(description="WhatsApp message id (set once WAHA accepted the message).")
    sessionId: str
    direction: Literal["in", "out"]
    chatId: str
    to: str
    text: str | None
    status: str = Field(description="PENDING, SERVER, DEVICE, READ, PLAYED or ERROR.")
    media: MediaInfo | None
    error: str | None
    metadata: dict[str, Any]
    timestamp: datetime
    sentAt: datetime | None
    deliveredAt: datetime | None
    readAt: datetime | None
    playedAt: datetime | None
    failedAt: datetime | None

    @classmethod
    def of(cls, message: Any, media_url: str | None = None) -> "MessageResponse":
        media = None
        if message.media:
            raw = message.media
            kind = raw.get("kind") or (media_kind(raw["mimetype"]) if raw.get("mimetype") else None)
            media = MediaInfo(kind=kind, mimetype=raw.get("mimetype"),
                              filename=raw.get("filename"), caption=raw.get("caption"), size=raw.get("size"),
                              status=raw.get("status"), url=media_url)
        return cls(
            id=message.id, messageId=message.waha_message_id, sessionId=message.session_id,
            direction=message.direction, chatId=message.chat_id,
            to=message.chat_id if message.direction == "out" else _own_chat(message), text=message.body,
            status=message.status, media=media, error=message.error, metadata=dict(message.extra or {}),
            timestamp=message.created_at, sentAt=message.sent_at, deliveredAt=message.delivered_at,
            readAt=message.read_at, playedAt=message.played_at, failedAt=message.failed_at,
        )


def _own_chat(message: Any) -> str:
    me = getattr(message.session, "me", None) or {}
    return str(me.get("id") or "")


ItemT = TypeVar("ItemT")


class Page(Response, Generic[ItemT]):
    data: list[ItemT]
    nextCursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class SessionPage(Page[SessionResponseDto]):
    pass


class MessagePage(Page[MessageResponse]):
    pass


class WebhookEndpointResponse(Response):
    """A tenant webhook endpoint; its signing secret is never shown again after creation."""

    id: int
    url: str
    description: str
    events: list[str] = Field(description="Event names sent to it; empty or [\"*\"] means every event.")
    enabled: bool
    createdAt: datetime

    @classmethod
    def of(cls, endpoint: Any) -> "WebhookEndpointResponse":
        return cls(id=endpoint.id, url=endpoint.url, description=endpoint.description or "",
                   events=list(endpoint.events or []), enabled=endpoint.is_enabled, createdAt=endpoint.created_at)


class WebhookEndpointList(Response):
    data: list[WebhookEndpointResponse]


class WebhookDeliveryResponse(Response):
    """One attempt to deliver one event; retries and replays are new attempts with the same msgId."""

    id: int
    endpointId: int | None = Field(description="null for deliveries to a session's own webhookUrl.")
    sessionId: str | None
    url: str
    msgId: str = Field(description="The webhook-id header, the same on every attempt of one event.")
    eventType: str
    attempt: int
    status: Literal[DELIVERY_STATUSES]  # type: ignore[valid-type]
    responseStatus: int | None = Field(description="HTTP status your URL answered, if it answered.")
    error: str | None
    durationMs: int | None
    createdAt: datetime

    @classmethod
    def of(cls, delivery: Any) -> "WebhookDeliveryResponse":
        return cls(id=delivery.id, endpointId=delivery.endpoint_id, sessionId=delivery.session_id, url=delivery.url,
                   msgId=delivery.msg_id, eventType=delivery.event_type, attempt=delivery.attempt,
                   status=delivery.status, responseStatus=delivery.response_status, error=delivery.error,
                   durationMs=delivery.duration_ms, createdAt=delivery.created_at)


class DeliveryPage(Page[WebhookDeliveryResponse]):
    pass


class QrResponse(Response):
    mimetype: str = Field(examples=["image/png"])
    data: str = Field(description="The QR image, base64-encoded.")
    expiresIn: int | None = Field(description="Seconds until WhatsApp rotates this QR.")


class ScreenResponse(Response):
    mimetype: str
    data: str = Field(description="Screenshot, base64-encoded.")


class PairingCodeResponse(Response):
    code: str = Field(examples=["ABCD-1234"], description="Type it on the phone: Linked devices > Link with phone number.")


class ServerHealth(Response):
    name: str
    ok: bool
    version: str | None
    engine: str | None
    tier: str | None
    latencyMs: float | None


class HealthResponse(Response):
    status: Literal["ok", "degraded", "down"]
    servers: list[ServerHealth]


class FieldError(Response):
    field: str
    message: str


class ErrorBody(Response):
    code: str = Field(examples=["session_not_found"])
    message: str
    details: dict[str, Any] = Field(description="validation_error: {fields: [{field, message}]}; others vary.")
    request_id: str | None = Field(description="Quote it when you contact support.")


class ErrorResponse(Response):
    error: ErrorBody


# ---- validation -----------------------------------------------------------------------------------------------

_MESSAGES = {
    "extra_forbidden": "Unknown field.",
    "missing": "This field is required.",
}

ModelT = TypeVar("ModelT", bound=BaseModel)


def validate(model: type[ModelT], data: Any, *, where: str = "body") -> ModelT:
    """Parse `data` into `model`, or raise Invalid listing every bad field."""
    if where == "body" and not isinstance(data, dict):
        raise Invalid("The request body must be a JSON object.",
                      details={"fields": [{"field": "body", "message": "Send a JSON object."}]})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = []
        for error in exc.errors(include_url=False):
            ctx = error.get("ctx") or {}
            name = ".".join(str(part) for part in error["loc"]) or ctx.get("field") or where
            fields.append({"field": name, "message": _MESSAGES.get(error["type"], error["msg"])})
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:3])
        raise Invalid(f"Invalid {where}: {summary}", details={"fields": fields}) from None
