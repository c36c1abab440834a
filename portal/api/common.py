"""Small helpers shared by the /waha views: the caller, its tenant, bodies in and out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Response, g, request
from pydantic import BaseModel
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest

from portal.api.schemas import validate
from portal.inputs import contains_nul
from portal.models import Tenant
from portal.services import idempotency
from portal.services.audit import Actor
from portal.services.errors import Invalid, ServiceError

ModelT = TypeVar("ModelT", bound=BaseModel)


def tenant() -> Tenant:
    """The tenant the bearer credential acts for."""
    return g.principal.tenant


def actor() -> Actor:
    """The audit actor of this call (token or JWT subject, with IP and request id)."""
    return g.principal.actor()


def json_body(model: type[ModelT]) -> ModelT:
    """The request's JSON body as `model`; 400 validation_error listing every bad field."""
    data = None
    if request.is_json:
        try:
            data = request.get_json()
        except BadRequest as exc:
            raise Invalid.field("body", exc.description or "The body is not valid JSON.") from None
        if contains_nul(data):
            raise Invalid.field("body", "Text must not contain NUL characters.")
    return validate(model, data, where="body")


def single_values(source: MultiDict[str, str], where: str, known: Iterable[str] | None = None) -> dict[str, str]:
    """A query string or form as a plain dict; a parameter given twice is refused, as an unknown one is.

    An empty parameter (?status=) counts as one left out ("no filter"), as HTML forms send it; with `known`
    (the model's fields) an empty unknown parameter is kept, so that validation refuses it like any unknown one."""
    repeated = [key for key, values in source.lists() if len(values) > 1]
    if repeated:
        fields = [{"field": key, "message": "Give this parameter once."} for key in repeated]
        raise Invalid(f"Invalid {where}: {repeated[0]}: Give this parameter once.", details={"fields": fields})
    names = None if known is None else set(known)
    return {k: v for k, v in source.items() if v != "" or (names is not None and k not in names)}


def query(model: type[ModelT]) -> ModelT:
    """The query string as `model`; unknown or repeated parameters are refused like unknown body fields."""
    return validate(model, single_values(request.args, "query", model.model_fields), where="query")


def idempotency_key() -> str | None:
    """The Idempotency-Key header as sent (the services check and store it); a key of the form the portal keeps
    for its own sends is refused here."""
    return idempotency.refuse_reserved(request.headers.get("Idempotency-Key"))


def send(model: BaseModel, status: int = 200, headers: dict[str, Any] | None = None) -> Response:
    """A DTO as the JSON response body."""
    response = Response(model.model_dump_json(), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


# Services name fields in Python spelling; integrators know the DTO spelling.
FIELD_NAMES = {
    "name": "sessionName",
    "engine": "engine",
    "webhook_url": "webhookUrl",
    "webhook_events": "webhookEvents",
    "reply_to": "replyTo",
    "phone": "phoneNumber",
    "media.kind": "media.type",
    "chat_id": "chatId",
    "session_id": "sessionId",
}


@contextmanager
def dto_field_names(extra: dict[str, str] | None = None) -> Iterator[None]:
    """Rename the fields a service's error names (400s and 409s alike) to the names the caller sent."""
    names = {**FIELD_NAMES, **(extra or {})}
    try:
        yield
    except ServiceError as exc:
        for item in exc.details.get("fields", []):
            field = item.get("field")
            if field in names:
                item["field"] = names[field]
        raise
