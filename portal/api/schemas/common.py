"""What every DTO of the /waha API shares: the base classes, the input rules, pages, errors and `validate`.

`Request` (unknown fields are an error) and `Response` are the bases of every model; the patterns and limits
here are stated in the OpenAPI document so generated clients send valid requests; `check_recipient` is the
phone-number rule of the request bodies; `Page` is the shape of every list answer; the error and health bodies
are shared by all areas; `validate` turns a pydantic failure into the API's `Invalid` with every bad field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.json_schema import JsonDict
from pydantic_core import PydanticCustomError

from portal import pagination
from portal.services import recipients
from portal.services.errors import Invalid

MAX_TEXT = 4096
MAX_PAGE = 200

# What the server enforces, stated in the OpenAPI document so generated clients send valid requests. Patterns are
# checked on the value as sent (lengths too); leading and trailing whitespace is dropped only afterwards.
# Classes are spelled out so every regex dialect (ECMA-262 of JSON Schema, Python, Rust) reads them the same.

# Whitespace as the server strips it (Python's str.isspace).
WS = r"\t-\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Text the server takes never holds NUL (PostgreSQL cannot store it; such requests answer 400).
NO_NUL = r"^[^\u0000]*$"
# Text that is not only whitespace (and holds no NUL).
NOT_BLANK = rf"^[^\u0000]*[^{WS}\u0000][^\u0000]*$"
# Only whitespace, or nothing: what the server reads as "not given" where blank is allowed.
BLANK = rf"^[{WS}]*$"
# A phone number in international form: 6 to 17 ASCII digits, the first not 0, after an optional + or 00, with
# whitespace, brackets, dots and dashes anywhere. It must also be a valid number of its country, as
# libphonenumber reads it (services.recipients.parse_phone), which no pattern can say: the document names that
# rule as a format (`phone`) beside the pattern.
_SEP = rf"[{WS}().-]*"
PHONE_PATTERN = rf"^{_SEP}(\+{_SEP}|0{_SEP}0{_SEP})?[1-9]{_SEP}([0-9]{_SEP}){{5,16}}$"
# A WhatsApp chat id of the kinds WAHA accepts as a recipient (surrounding whitespace is dropped).
CHAT_ID_PATTERN = rf"^[{WS}]*({'|'.join(recipients.CHAT_ID_PATTERNS)})[{WS}]*$"
RECIPIENT_PATTERN = f"({PHONE_PATTERN})|({CHAT_ID_PATTERN})"
# `phone`: a valid number of its country; `whatsapp-recipient`: such a number or a chat id.
PHONE_RULE: JsonDict = {"pattern": PHONE_PATTERN, "format": "phone"}
RECIPIENT_RULE: JsonDict = {"pattern": RECIPIENT_PATTERN, "format": "whatsapp-recipient"}
# Standard base64 with its padding, as the server decodes it (strictly), and not empty.
BASE64_PATTERN = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$"
# Cursors are opaque URL-safe base64 without padding, as nextCursor gives them.
CURSOR_PATTERN = pagination.CURSOR_PATTERN
# http(s), a host (a name, IPv4 address or bracketed IPv6 address), an optional port (1-65535), then any path,
# query or fragment without whitespace, control characters or backslashes (the form portal.net.policy checks).
PORT_PATTERN = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_HOST = r"([A-Za-z0-9\u0080-\uffff][A-Za-z0-9.\u0080-\uffff-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])"
URL_PATTERN = rf"^https?://{_HOST}(:{PORT_PATTERN})?([/?#][^\u0000-\u0020\u007f\\]*)?$"
# The pattern is the URL's outer form; which hosts are taken (a valid DNS name or IP address, on the public
# internet) no pattern can say, so the document names that rule as a format beside it.
URL_RULE: JsonDict = {"pattern": URL_PATTERN, "format": "public-url"}
# Dates and times of filters: RFC 3339 (a "T", seconds, an offset or "Z") in the years MIN_YEAR..MAX_YEAR
# (1900-9998); the day must exist (format date-time).
_YEAR = r"(19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
DATE_TIME_PATTERN = (
    rf"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
# An integer in a query string: decimal ASCII digits with an optional sign.
WIRE_INT_PATTERN = r"^[+-]?[0-9]+$"
# A proxy server: host:port, with http://, https://, socks4:// or socks5:// (any case) in front or not, nothing after
# but an optional "/" (portal.services.destinations.clean_proxy).
_PROXY_SCHEME = r"([Hh][Tt][Tt][Pp][Ss]?|[Ss][Oo][Cc][Kk][Ss][45])://"
PROXY_SERVER_PATTERN = rf"^[{WS}]*({_PROXY_SCHEME})?{_HOST}:{PORT_PATTERN}/?[{WS}]*$"
# A media type as type/subtype (RFC 6838 characters), parameters after ";" allowed (services.messages.validation).
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
MIMETYPE_PATTERN = rf"^[{WS}]*{_TOKEN}/{_TOKEN}[{WS}]*(;[^\u0000]*)?$"
# A file name without a path.
FILENAME_PATTERN = r"^[^/\\\u0000]*$"

# The patterns above hold no NUL; the OpenAPI document adds the NUL rule to any other text.
NUL_FREE_PATTERNS = frozenset(
    {
        NO_NUL,
        NOT_BLANK,
        BLANK,
        PHONE_PATTERN,
        CHAT_ID_PATTERN,
        RECIPIENT_PATTERN,
        BASE64_PATTERN,
        CURSOR_PATTERN,
        URL_PATTERN,
        PROXY_SERVER_PATTERN,
        DATE_TIME_PATTERN,
        WIRE_INT_PATTERN,
        MIMETYPE_PATTERN,
        FILENAME_PATTERN,
    }
)
# What a value that does not match a pattern is told (instead of the pattern itself).
PATTERN_MESSAGES = {
    NOT_BLANK: "Must not be empty or only spaces.",
    BASE64_PATTERN: "Must be base64-encoded file content (standard alphabet, with padding).",
    CURSOR_PATTERN: "Not a cursor; pass nextCursor as given.",
    URL_PATTERN: "Must be an http:// or https:// URL.",
    PROXY_SERVER_PATTERN: "Give the proxy server as host:port.",
    MIMETYPE_PATTERN: "Must be a media type such as image/jpeg.",
    FILENAME_PATTERN: "Must be a plain file name, without / or \\.",
}


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
    """Base of every request body and query: unknown fields are an error, not silently ignored.

    A text field's rules (length, pattern) are checked on the value as sent, as the document states them; only
    then are leading and trailing whitespace dropped (before the model's own validators see the value)."""

    model_config = ConfigDict(extra="forbid")
    # Fields taken exactly as sent (secrets).
    keep_whitespace: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _strip(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and info.field_name not in cls.keep_whitespace:
            return value.strip()
        return value


def _wire_int(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(WIRE_INT_PATTERN, value):
        raise PydanticCustomError("int_parsing", "Input should be a whole number (digits only).")
    return value


def _wire_date_time(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(DATE_TIME_PATTERN, value):
        raise PydanticCustomError(
            "datetime_parsing", "Give a date and time as in RFC 3339, with an offset, e.g. 2024-05-01T12:00:00Z."
        )
    return value


# Query parameters: an integer written in digits (not " 5", "1_0" or "5.0"), and an RFC 3339 date and time.
# Limits of a nullable one go before WIRE_INT (Annotated[int, Field(ge=1), WIRE_INT] | None), or the document
# loses them.
WIRE_INT = BeforeValidator(_wire_int)
QueryInt = Annotated[int, WIRE_INT]
QueryDateTime = Annotated[datetime, BeforeValidator(_wire_date_time)]


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


def check_phone(value: str) -> str:
    """A phone number in international form that is a valid number of its country (services.recipients)."""
    if not re.fullmatch(PHONE_PATTERN, value):
        raise PydanticCustomError(
            "phone", "Not a phone number: use international format with country code, e.g. +491701234567."
        )
    if not recipients.is_valid_phone(value):
        raise PydanticCustomError(
            "phone", "Not a valid phone number: use international format with country code, e.g. +491701234567."
        )
    return value


def check_recipient(value: str) -> str:
    """A chat id of a kind WAHA accepts, or a phone number (`check_phone`)."""
    if re.fullmatch(CHAT_ID_PATTERN, value):
        return value
    if "@" in value:
        raise PydanticCustomError(
            "chat_id", "Not a valid chat id; use a phone number or an id ending in @c.us, @g.us or @lid."
        )
    return check_phone(value)


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
MAX_FIELD_ERRORS = 50  # a validation error lists this many fields; details.moreFields counts the rest


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
            message = _MESSAGES.get(error["type"], error["msg"])
            if error["type"] == "string_pattern_mismatch":
                message = PATTERN_MESSAGES.get(ctx.get("pattern", ""), "Not in the expected form.")
            fields.append({"field": name, "message": message})
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:3])
        details: dict[str, Any] = {"fields": fields[:MAX_FIELD_ERRORS]}
        if len(fields) > MAX_FIELD_ERRORS:  # an answer no larger than a screen, however large the request
            details["moreFields"] = len(fields) - MAX_FIELD_ERRORS
        raise Invalid(f"Invalid {where}: {summary}", details=details) from None
