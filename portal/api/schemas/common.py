"""What every DTO of the /waha API shares: the base classes, the input rules, pages, errors and `validate`.

`Request` (unknown fields are an error) and `Response` are the bases of every model; the patterns and limits
here are stated in the OpenAPI document so generated clients send valid requests; `check_recipient` is the
phone-number rule of the request bodies; `Page` is the shape of every list answer; the error and health bodies
are shared by all areas; `validate` turns a pydantic failure into the API's `Invalid` with every bad field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import JsonDict
from pydantic_core import PydanticCustomError

from portal.services import recipients
from portal.services.errors import Invalid

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
PHONE_RULE: JsonDict = {"pattern": PHONE_PATTERN, "format": "phone"}
RECIPIENT_RULE: JsonDict = {"pattern": RECIPIENT_PATTERN, "format": "whatsapp-recipient"}
# Standard base64 with its padding, as the server decodes it (strictly).
BASE64_PATTERN = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
# Cursors are opaque URL-safe base64 without padding, as nextCursor gives them.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
# http(s), a host name or IPv4 address, an optional port (1-65535), then any path/query without spaces.
PORT_PATTERN = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL_PATTERN = r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:" + PORT_PATTERN + r")?([/?][^\s]*)?$"
# The pattern is the URL's outer form; which hosts are taken (a valid DNS name or four decimal numbers, and an
# address on the public internet) no pattern can say, so the document names that rule as a format beside it.
URL_RULE: JsonDict = {"pattern": URL_PATTERN, "format": "public-url"}
# Dates and times of filters lie in the years MIN_YEAR..MAX_YEAR (1900-9998).
YEAR_PATTERN = r"^(19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"


def string_rule(**rule: Any) -> Callable[[JsonDict], None]:
    """json_schema_extra that states `rule` (pattern, ...) on the string branch of a possibly nullable field."""

    def apply(schema: dict[str, Any]) -> None:
        for branch in schema.get("anyOf", [schema]):
            if branch.get("type") == "string":
                branch.update(rule)

    return apply


RECIPIENT_DOC = (
    "Phone number in international form with country code (e.g. +491701234567; it must be a valid "
    "number of that country), or a chat id ending in @c.us, @g.us or @lid."
)


class Request(BaseModel):
    """Base of every request body and query: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


def recipient_field() -> Any:
    """The `to` field of a request: a phone number in international form or a chat id (see check_recipient)."""
    return Field(
        min_length=3,
        max_length=160,
        description=RECIPIENT_DOC,
        examples=["+491701234567"],
        json_schema_extra=RECIPIENT_RULE,
    )


def check_recipient(value: str) -> str:
    """A phone number in international form (the rule of services.recipients); chat ids (with "@") are checked by
    the messages service, which knows which kinds WAHA accepts."""
    value = value.strip()
    if "@" in value:
        return value
    if not recipients.looks_like_phone(value):
        raise PydanticCustomError(
            "phone", "Not a phone number: use international format with country code, e.g. +491701234567."
        )
    if recipients.parse_phone(value) is None:
        raise PydanticCustomError(
            "phone", "Not a valid phone number: use international format with country code, e.g. +491701234567."
        )
    return value


ItemT = TypeVar("ItemT")


class Page(Response, Generic[ItemT]):
    data: list[ItemT]
    nextCursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class ServerHealth(Response):
    name: str
    ok: bool
    version: str | None
    engine: str | None
    tier: str | None
    latencyMs: float | None


HealthStatus = Literal["ok", "degraded", "down"]


class HealthResponse(Response):
    status: HealthStatus
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
        raise Invalid(
            "The request body must be a JSON object.",
            details={"fields": [{"field": "body", "message": "Send a JSON object."}]},
        )
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
