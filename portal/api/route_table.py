"""The building blocks of the /waha route table (`portal.api.openapi`): an endpoint, an error code, and the error
statuses most endpoints share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class ErrorCode:
    status: int
    code: str
    meaning: str


AUTH = (401, 403, 429)
# Any call that reaches WAHA can meet a refusal (400), a session WAHA lost or is in the wrong state (409), or an
# outage (503).
WAHA = (400, 409, 503)


@dataclass(frozen=True)
class ApiRoute:
    """One endpoint: how it is called, what it needs, what it answers."""

    method: str
    path: str  # with {param} placeholders named as in the Flask rule
    endpoint: str
    summary: str
    tag: str
    permission: str | None
    ok: int = 200
    response: type[BaseModel] | None = None
    accepted: type[BaseModel] | None = None  # a 202 answer besides `ok` (e.g. a send scheduled for later)
    body: type[BaseModel] | None = None
    multipart: bool = False
    query: type[BaseModel] | None = None
    image: str | None = None  # media type answered for ?format=image instead of JSON
    binary: bool = False  # the answer is a file
    csv: bool = False  # the answer is CSV text, streamed
    idempotent: bool = False
    errors: tuple[int, ...] = ()
    description: str = ""
    example: dict[str, Any] | None = None
