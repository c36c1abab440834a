"""The OpenAPI 3.1 document of the /waha API, built from the route table below and the DTOs of portal.api.schemas.

The route table is the one place an endpoint is described. A test checks that it lists every /waha rule of the
app's URL map with the permission the view declares, and that real responses validate against the document.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from portal.api import schemas as s
from portal.api.openapi_inbox import INBOX_ERROR_CODES, INBOX_MODELS, INBOX_ROUTES
from portal.api.route_table import AUTH, WAHA, ApiRoute, ErrorCode

__all__ = ["AUTH", "ERROR_CODES", "ROUTES", "WAHA", "ApiRoute", "ErrorCode", "build_document", "route_for"]

REF = "#/components/schemas/{model}"


ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(400, "validation_error", "Bad input; details.fields lists every bad field as {field, message}."),
    ErrorCode(401, "unauthorized", "No bearer credential, or it is unknown, malformed, expired or revoked."),
    ErrorCode(
        403, "forbidden", "The token's scopes (or the JWT's roles) lack the permission; details.required names it."
    ),
    ErrorCode(404, "session_not_found", "No such session in your tenant (another tenant's session looks the same)."),
    ErrorCode(404, "message_not_found", "No such message in your tenant."),
    ErrorCode(404, "media_not_found", "The message has no stored file."),
    ErrorCode(404, "endpoint_not_found", "No such webhook endpoint in your tenant."),
    ErrorCode(404, "delivery_not_found", "No such webhook delivery in your tenant."),
    ErrorCode(409, "session_exists", "Your tenant already has a session with that name."),
    ErrorCode(
        409, "session_not_ready", "The session is not in the status this needs (details.status tells which it is in)."
    ),
    ErrorCode(
        409,
        "idempotency_key_reused",
        "The Idempotency-Key was already used for a different request, or "
        "the session it created was deleted since; use a new key.",
    ),
    ErrorCode(409, "session_limit", "Your tenant has as many sessions as its plan allows."),
    ErrorCode(
        409, "session_missing_on_waha", "WAHA lost the session (e.g. its storage was wiped); start it to re-create it."
    ),
    ErrorCode(
        405,
        "method_not_allowed",
        "The path exists but not with this method; the Allow header lists the methods it takes.",
    ),
    ErrorCode(413, "payload_too_large", "The upload is larger than the server accepts."),
    ErrorCode(
        429,
        "rate_limited",
        "Too many calls for this credential, too many failed authentications from this address, or sends too fast "
        "on this session; see Retry-After.",
    ),
    ErrorCode(503, "waha_unavailable", "WhatsApp (WAHA) is down, slow or busy; retry after Retry-After seconds."),
    *INBOX_ERROR_CODES,
)

STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    503: "Service Unavailable",
}

_S = "/waha/sessions/{session_id}"

ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "POST",
        "/waha/sessions",
        "api.create_session",
        "Create a session",
        "Sessions",
        "sessions:write",
        ok=201,
        response=s.SessionCreatedDto,
        body=s.CreateSessionDto,
        idempotent=True,
        errors=(400, *AUTH, 409, *WAHA),
        description="Creates the session on a WAHA server with room and starts it. Poll its status (or "
        "GET .../qr) until it is SCAN_QR_CODE, then show the QR to the phone's owner. The "
        "answer's webhookSecret signs the deliveries to webhookUrl and is shown only here: "
        "keep it.",
        example={
            "sessionName": "support",
            "webhookUrl": "https://example.com/hooks/whatsapp",
            "webhookEvents": ["message", "session.status"],
        },
    ),
    ApiRoute(
        "GET",
        "/waha/sessions",
        "api.list_sessions",
        "List sessions",
        "Sessions",
        "sessions:read",
        response=s.SessionPage,
        query=s.SessionListQuery,
        errors=(400, *AUTH),
        description="All sessions of your tenant (one page; nextCursor is always null).",
    ),
    ApiRoute(
        "GET",
        _S,
        "api.get_session",
        "Get a session",
        "Sessions",
        "sessions:read",
        response=s.SessionResponseDto,
        errors=(*AUTH, 404),
    ),
    ApiRoute(
        "DELETE",
        _S,
        "api.delete_session",
        "Delete a session",
        "Sessions",
        "sessions:write",
        ok=204,
        errors=(*AUTH, 404, *WAHA),
        description="Logs out and removes the session on WAHA, then here. Answers 204 with no body.",
    ),
    ApiRoute(
        "POST",
        f"{_S}/webhook-secret",
        "api.rotate_session_webhook_secret",
        "Rotate a session's webhook secret",
        "Sessions",
        "sessions:write",
        response=s.WebhookSecretResponse,
        errors=(*AUTH, 404),
        description="Makes a new signing secret for the deliveries to the session's webhookUrl and answers it "
        "this once; from now on every delivery (retries included) is signed with it and the old "
        "one no longer verifies.",
    ),
    ApiRoute(
        "POST",
        f"{_S}/start",
        "api.start_session",
        "Start a session",
        "Sessions",
        "sessions:write",
        response=s.SessionResponseDto,
        errors=(*AUTH, 404, *WAHA),
    ),
    ApiRoute(
        "POST",
        f"{_S}/stop",
        "api.stop_session",
        "Stop a session",
        "Sessions",
        "sessions:write",
        response=s.SessionResponseDto,
        errors=(*AUTH, 404, *WAHA),
        description="Stops the session; the WhatsApp link is kept, so start resumes without a new QR.",
    ),
    ApiRoute(
        "POST",
        f"{_S}/restart",
        "api.restart_session",
        "Restart a session",
        "Sessions",
        "sessions:write",
        response=s.SessionResponseDto,
        errors=(*AUTH, 404, *WAHA),
    ),
    ApiRoute(
        "POST",
        f"{_S}/logout",
        "api.logout_session",
        "Log a session out",
        "Sessions",
        "sessions:write",
        response=s.SessionResponseDto,
        errors=(*AUTH, 404, *WAHA),
        description="Unlinks the WhatsApp account; the session goes back to SCAN_QR_CODE.",
    ),
    ApiRoute(
        "POST",
        f"{_S}/sync",
        "api.sync_session",
        "Refresh a session's status",
        "Sessions",
        "sessions:read",
        response=s.SessionResponseDto,
        errors=(*AUTH, 404, *WAHA),
        description="Reads the session's status from WAHA now instead of waiting for the next event.",
    ),
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
        errors=(400, *AUTH, 404, 409, *WAHA),
        description="The other way to link: the phone's owner types this code under Linked devices.",
        example={"phoneNumber": "+491701234567"},
    ),
    ApiRoute(
        "GET",
        f"{_S}/screen",
        "api.get_screen",
        "Get a screenshot",
        "Sessions",
        "sessions:read",
        response=s.ScreenResponse,
        query=s.ImageQuery,
        image="image/*",
        errors=(400, *AUTH, 404, 409, *WAHA),
        description="While the session is SCAN_QR_CODE the screen shows the QR code, so it then needs "
        "`sessions:write` too (403 forbidden otherwise).",
    ),
    ApiRoute(
        "POST",
        f"{_S}/send",
        "api.send_message",
        "Send a message",
        "Messages",
        "messages:send",
        response=s.MessageResponse,
        body=s.SendMessageDto,
        idempotent=True,
        errors=(400, *AUTH, 404, 409, 422, *WAHA),
        description="Text, media (by URL or base64) or both. The session must be WORKING. Sends are paced "
        "per session (429 with Retry-After). The answer carries status PENDING or SERVER; "
        "later delivery and read receipts move it forward.",
        example={"to": "+491701234567", "text": "Hello from the portal"},
    ),
    ApiRoute(
        "POST",
        f"{_S}/send/media",
        "api.send_media",
        "Send an uploaded file",
        "Messages",
        "messages:send",
        response=s.MessageResponse,
        body=s.MediaUploadForm,
        multipart=True,
        idempotent=True,
        errors=(400, *AUTH, 404, 409, 413, 422, *WAHA),
        description="multipart/form-data with the file in field `file` plus `to` and an optional "
        "`caption`; the media type follows the file's mimetype unless `type` is given.",
    ),
    ApiRoute(
        "GET",
        f"{_S}/messages",
        "api.list_session_messages",
        "List a session's messages",
        "Messages",
        "messages:read",
        response=s.MessagePage,
        query=s.MessageListQuery,
        errors=(400, *AUTH, 404),
        description="Newest first, in pages; pass nextCursor as ?cursor= for the next one.",
    ),
    ApiRoute(
        "GET",
        "/waha/messages",
        "api.list_messages",
        "List the tenant's messages",
        "Messages",
        "messages:read",
        response=s.MessagePage,
        query=s.TenantMessageListQuery,
        errors=(400, *AUTH, 404),
        description="Every session's messages, newest first; sessionId narrows to one session.",
    ),
    ApiRoute(
        "GET",
        "/waha/messages/{message_id}",
        "api.get_message",
        "Get a message",
        "Messages",
        "messages:read",
        response=s.MessageResponse,
        errors=(*AUTH, 404),
    ),
    ApiRoute(
        "GET",
        "/waha/messages/{message_id}/media",
        "api.message_media",
        "Download a message's file",
        "Messages",
        "messages:read",
        binary=True,
        errors=(*AUTH, 404),
    ),
    ApiRoute(
        "GET",
        "/waha/webhooks/endpoints",
        "api.list_webhook_endpoints",
        "List webhook endpoints",
        "Webhooks",
        "webhooks:read",
        response=s.WebhookEndpointList,
        errors=AUTH,
        description="Your tenant's webhook endpoints, oldest first, in one page. Secrets are never shown.",
    ),
    ApiRoute(
        "GET",
        "/waha/webhooks/deliveries",
        "api.list_webhook_deliveries",
        "List webhook deliveries",
        "Webhooks",
        "webhooks:read",
        response=s.DeliveryPage,
        query=s.DeliveryListQuery,
        errors=(400, *AUTH, 404),
        description="Delivery attempts, newest first, in pages; pass nextCursor as ?cursor= for the next "
        "one. endpointId and status narrow the list (an unknown endpointId answers 404).",
    ),
    ApiRoute(
        "POST",
        "/waha/webhooks/deliveries/{delivery_id}/replay",
        "api.replay_webhook_delivery",
        "Replay a webhook delivery",
        "Webhooks",
        "webhooks:manage",
        ok=202,
        response=s.WebhookDeliveryResponse,
        errors=(*AUTH, 404),
        description="Sends the delivery's event again as a new attempt (same msgId, to the endpoint's "
        "current URL). Answers 202 with the new attempt, queued as pending.",
    ),
    *INBOX_ROUTES,
    ApiRoute(
        "GET",
        "/waha/health",
        "api.health",
        "WAHA health",
        "Service",
        "sessions:read",
        response=s.HealthResponse,
        errors=AUTH,
        description="Whether each WAHA server answers, with its version. 200 even when some are down.",
    ),
    ApiRoute(
        "GET",
        "/waha/openapi.json",
        "api.openapi_document",
        "This OpenAPI document",
        "Service",
        None,
        description="No credentials needed.",
    ),
    ApiRoute(
        "GET",
        "/waha/docs",
        "api.docs",
        "Readable API docs",
        "Service",
        None,
        description="This page, rendered from the OpenAPI document. No credentials needed.",
    ),
)

COMPONENT_MODELS: tuple[type[BaseModel], ...] = (
    s.CreateSessionDto,
    s.SendMessageDto,
    s.MediaDto,
    s.PairingCodeDto,
    s.MediaUploadForm,
    s.SessionResponseDto,
    s.SessionPage,
    s.MessageResponse,
    s.MessagePage,
    s.MediaInfo,
    s.QrResponse,
    s.SessionCreatedDto,
    s.WebhookSecretResponse,
    s.ScreenResponse,
    s.PairingCodeResponse,
    s.WebhookEndpointResponse,
    s.WebhookEndpointList,
    s.WebhookDeliveryResponse,
    s.DeliveryPage,
    s.HealthResponse,
    s.ServerHealth,
    *INBOX_MODELS,
    s.ErrorResponse,
    s.ErrorBody,
    s.FieldError,
)


# Text the server takes never holds NUL (PostgreSQL cannot store it; such requests answer 400).
NO_NUL = r"^[^\u0000]*$"


# Any JSON value without NUL in its strings or keys: what a free-form object of a request (a session's WAHA
# config, a message's metadata) may hold.
JSON_VALUE = "JsonValue"
_JSON_VALUE_SCHEMA = {
    "description": "Any JSON value; no string or key in it may hold NUL.",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": REF.format(model=JSON_VALUE)}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": REF.format(model=JSON_VALUE)},
        },
    ],
}


def _no_nul(schema: Any) -> Any:
    """Add NO_NUL to every string schema without a pattern of its own, and to the values and keys of free-form
    objects, recursively (request schemas only)."""
    if isinstance(schema, dict):
        if (
            schema.get("type") == "string"
            and "pattern" not in schema
            and "enum" not in schema
            and "format" not in schema
            and "const" not in schema
        ):
            schema["pattern"] = NO_NUL
        if schema.get("type") == "object" and schema.get("additionalProperties", True) is not False:
            if schema.get("additionalProperties", True) is True:
                schema["additionalProperties"] = {"$ref": REF.format(model=JSON_VALUE)}
            names = schema.get("propertyNames")
            if names is None:
                schema["propertyNames"] = {"pattern": NO_NUL}
            elif "enum" not in names:
                schema["propertyNames"] = {"allOf": [names, {"pattern": NO_NUL}]}
        for value in schema.values():
            _no_nul(value)
    elif isinstance(schema, list):
        for value in schema:
            _no_nul(value)
    return schema


def _components() -> dict[str, Any]:
    pairs: list[Any] = [
        (model, "validation" if issubclass(model, s.Request) else "serialization") for model in COMPONENT_MODELS
    ]
    _, top = models_json_schema(pairs, ref_template=REF)
    defs = top.get("$defs", {})
    for model in COMPONENT_MODELS:
        if issubclass(model, s.Request) and model.__name__ in defs:
            _no_nul(defs[model.__name__])
    defs[JSON_VALUE] = _JSON_VALUE_SCHEMA
    return dict(sorted(defs.items()))


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        param = {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": description,
            "schema": _no_nul(prop),
        }
        if name not in required:
            param["allowEmptyValue"] = True  # ?status= (as HTML forms send it) means no filter
        params.append(param)
    return params


_PATH_NAMES = {
    "session_id": "session",
    "delivery_id": "webhook delivery",
    "chat_id": "chat",
    "contact_id": "contact",
    "reply_id": "quick reply",
}
# Session ids are opaque text, chat ids WhatsApp's (491701234567@c.us); the other ids are numbers.
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "session_id": {"type": "string", "pattern": r"^[^\u0000/]+$"},
    "chat_id": {"type": "string", "maxLength": 128, "pattern": s.CHAT_ID_PATTERN},
}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    params = []
    for part in path.split("/"):
        if part.startswith("{"):
            name = part.strip("{}")
            what = _PATH_NAMES.get(name, "message")
            schema = dict(_PATH_SCHEMAS.get(name, {"type": "string", "pattern": "^[0-9]{1,19}$"}))
            description = f"The {what}'s id" + (" on WhatsApp, e.g. 491701234567@c.us." if name == "chat_id" else ".")
            params.append({"name": name, "in": "path", "required": True, "description": description, "schema": schema})
    return params


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A form field's schema without its null branch: a form has no null (a field left out is "none")."""
    branches = [b for b in prop.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) != 1:
        return prop
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**branches[0], **rest}


def _multipart_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The form's fields plus `file`, as one closed object: an allOf with a closed model cannot take `file`."""
    schema = model.model_json_schema(ref_template=REF)
    schema.pop("title", None)
    properties = {"file": {"type": "string", "format": "binary", "description": "The file to send."}}
    properties.update({name: _not_null(prop) for name, prop in schema.get("properties", {}).items()})
    return _no_nul(
        {
            **schema,
            "properties": properties,
            "required": ["file", *schema.get("required", [])],
            "additionalProperties": False,
        }
    )


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


_HEADERS = {
    "X-Request-ID": {"description": "Id of this request; quote it to support.", "schema": {"type": "string"}},
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}


def _error_response(status: int) -> dict[str, Any]:
    codes = [e for e in ERROR_CODES if e.status == status]
    description = STATUS_TEXT[status] + ": " + "; ".join(f"`{e.code}`: {e.meaning}" for e in codes)
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(s.ErrorResponse)}},
        "headers": dict(_HEADERS),
    }
    if status in (429, 503):
        response["headers"].update(_RETRY_AFTER)
    return response


def _operation(route: ApiRoute) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.endpoint.split(".", 1)[1], "summary": route.summary, "tags": [route.tag]}
    description = route.description
    if route.permission:
        description = (description + "\n\n" if description else "") + f"Needs permission `{route.permission}`."
        op["x-permission"] = route.permission
    else:
        op["security"] = []
    if description:
        op["description"] = description
    params = _path_parameters(route.path)
    if route.query:
        params += _query_parameters(route.query)
    if route.idempotent:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Makes retries safe: a repeat with the same key and body answers the first "
                "result without acting again (keys are kept at least 24 hours).",
                "schema": {
                    "type": "string",
                    "maxLength": 200,
                    "pattern": "^([!-~]([ -~]*[!-~])?)?$",
                    "description": "1-200 printable ASCII characters (e.g. a UUID); an empty header counts as no key.",
                },
            }
        )
    if params:
        op["parameters"] = params
    if route.body is not None:
        if route.multipart:
            op["requestBody"] = {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": _multipart_schema(route.body),
                        "encoding": {"file": {"contentType": "*/*"}},
                    }
                },
            }
        else:
            media: dict[str, Any] = {"schema": _ref(route.body)}
            if route.example:
                media["example"] = route.example
            op["requestBody"] = {"required": True, "content": {"application/json": media}}
    ok: dict[str, Any] = {"description": STATUS_TEXT[route.ok], "headers": dict(_HEADERS)}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": _ref(route.response)}}
        if route.image:
            ok["content"][route.image] = {"schema": {"type": "string", "format": "binary"}}
    elif route.binary:
        # The file as stored, under its own media type.
        ok["content"] = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    elif route.endpoint == "api.openapi_document":
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    elif route.endpoint == "api.docs":
        ok["content"] = {"text/html": {"schema": {"type": "string"}}}
    responses = {str(route.ok): ok}
    for status in sorted(set(route.errors)):
        responses[str(status)] = _error_response(status)
    op["responses"] = responses
    return op


def build_document(server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document of the /waha API."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "WAHA Portal API",
            "version": "1.0.0",
            "description": "Create WhatsApp sessions, link them by QR or pairing code, send and read messages. "
            "Authenticate with `Authorization: Bearer <API token or JWT>`. Errors share one body: "
            '`{"error": {"code", "message", "details", "request_id"}}`.',
        },
        "servers": [{"url": server_url}],
        "tags": [
            {"name": "Sessions"},
            {"name": "Messages"},
            {"name": "Inbox"},
            {"name": "Webhooks"},
            {"name": "Service"},
        ],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A portal API token (wp_...; its scopes are permissions) or a JWT from your "
                    "identity provider (tenant and roles in claims).",
                }
            },
        },
        "x-error-codes": [{"status": e.status, "code": e.code, "meaning": e.meaning} for e in ERROR_CODES],
    }


def route_for(endpoint: str) -> ApiRoute | None:
    """The table entry of a Flask endpoint name."""
    return next((r for r in ROUTES if r.endpoint == endpoint), None)
