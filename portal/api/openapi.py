"""The OpenAPI 3.1 document of the /waha API, built from the route table (`openapi_routes`,
`openapi_inbox`) and the DTOs of portal.api.schemas.

The route table is the one place an endpoint is described. A test checks that it lists every /waha rule of the
app's URL map with the permission the view declares, and that real responses validate against the document.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from portal.api import schemas as s
from portal.api.error_codes import ERROR_CODES
from portal.api.openapi_routes import COMPONENT_MODELS, ROUTES
from portal.api.route_table import AUTH, WAHA, ApiRoute, ErrorCode

__all__ = ["AUTH", "ERROR_CODES", "ROUTES", "WAHA", "ApiRoute", "ErrorCode", "build_document", "route_for"]

REF = "#/components/schemas/{model}"


STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    206: "Partial Content",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    410: "Gone",
    413: "Payload Too Large",
    422: "Unprocessable Content",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    503: "Service Unavailable",
}

# Any JSON value without NUL in its strings or keys: what a free-form object of a request (a session's WAHA
# config, a message's metadata) may hold.
JSON_VALUE = "JsonValue"
_JSON_VALUE_SCHEMA = {
    "description": "Any JSON value; no string or key in it may hold NUL.",
    "anyOf": [
        {"type": "string", "pattern": s.NO_NUL},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": REF.format(model=JSON_VALUE)}},
        {
            "type": "object",
            "propertyNames": {"pattern": s.NO_NUL},
            "additionalProperties": {"$ref": REF.format(model=JSON_VALUE)},
        },
    ],
}


def _no_nul(schema: Any) -> Any:
    """State the server's NUL rule in a request schema, recursively: text holds no NUL (PostgreSQL cannot store
    it; such requests answer 400), nor do the keys of free-form objects, whose values are JsonValue unless typed."""
    if isinstance(schema, dict):
        if (
            schema.get("type") == "string"
            and not schema.keys() & {"enum", "const"}
            and schema.get("format") != "binary"
        ):
            pattern = schema.get("pattern")
            if pattern is None:
                schema["pattern"] = s.NO_NUL
            elif pattern not in s.NUL_FREE_PATTERNS:
                schema.setdefault("allOf", []).append({"pattern": s.NO_NUL})
        if schema.get("type") == "object" and schema.get("additionalProperties", True) is not False:
            if schema.get("additionalProperties", True) is True:
                schema["additionalProperties"] = {"$ref": REF.format(model=JSON_VALUE)}
            names = schema.get("propertyNames")
            if names is None:
                schema["propertyNames"] = {"pattern": s.NO_NUL}
            elif not names.keys() & {"enum", "const"} and names.get("pattern") not in s.NUL_FREE_PATTERNS:
                schema["propertyNames"] = {"allOf": [names, {"pattern": s.NO_NUL}]}
        for key, value in schema.items():
            if key not in ("if", "not"):  # conditions select, they do not constrain
                _no_nul(value)
    elif isinstance(schema, list):
        for value in schema:
            _no_nul(value)
    return schema


def _request_models() -> set[str]:
    """Names of every request model (bodies, queries and the objects nested in them)."""
    names, todo = set(), [s.Request]
    while todo:
        model = todo.pop()
        names.add(model.__name__)
        todo.extend(model.__subclasses__())
    return names


def _components() -> dict[str, Any]:
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (model, "validation" if issubclass(model, s.Request) else "serialization") for model in COMPONENT_MODELS
    ]
    _, top = models_json_schema(pairs, ref_template=REF)
    defs = top.get("$defs", {})
    requests = _request_models()
    for name, schema in defs.items():
        if name in requests:
            _no_nul(schema)
    defs[JSON_VALUE] = _JSON_VALUE_SCHEMA
    return dict(sorted(defs.items()))


# An empty query parameter or form field (?status=) counts as one left out, as HTML forms send it.
EMPTY_AS_ABSENT = "An empty value counts as the parameter left out."


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
            param["allowEmptyValue"] = True
            param["description"] = f"{description} {EMPTY_AS_ABSENT}".strip()
        params.append(param)
    return params


_PATH_NAMES = {
    "session_id": "session",
    "delivery_id": "webhook delivery",
    "chat_id": "chat",
    "contact_id": "contact",
    "reply_id": "quick reply",
    "item_id": "scheduled message",
    "campaign_id": "campaign",
}
# Session ids are opaque text, chat ids WhatsApp's (491701234567@c.us); the other ids are numbers.
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "session_id": {"type": "string", "pattern": r"^[^\u0000/]+$"},
    "chat_id": {"type": "string", "maxLength": 128, "pattern": s.CHAT_ID_PATTERN},
    "phone": {"type": "string", "maxLength": 160, "pattern": s.RECIPIENT_PATTERN},
}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    params = []
    for part in path.split("/"):
        if part.startswith("{"):
            name = part.strip("{}")
            what = _PATH_NAMES.get(name, "message")
            schema = dict(_PATH_SCHEMAS.get(name, {"type": "string", "pattern": "^[0-9]{1,19}$"}))
            description = f"The {what}'s id" + (" on WhatsApp, e.g. 491701234567@c.us." if name == "chat_id" else ".")
            if name == "phone":
                description = "The number: +491701234567, 491701234567 or 491701234567@c.us."
            params.append({"name": name, "in": "path", "required": True, "description": description, "schema": schema})
    return params


def _multipart_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The form's fields plus `file`, as one closed object: an allOf with a closed model cannot take `file`."""
    schema = model.model_json_schema(ref_template=REF)
    schema.pop("title", None)
    required = schema.get("required", [])
    properties = {
        "file": {"type": "string", "format": "binary", "minLength": 1, "description": "The file to send (not empty)."}
    }
    properties.update(
        {name: _form_field(field, name in required) for name, field in schema.get("properties", {}).items()}
    )
    return _no_nul(
        {
            **schema,
            "properties": properties,
            "required": ["file", *required],
            "additionalProperties": False,
        }
    )


def _form_field(field: dict[str, Any], required: bool) -> dict[str, Any]:
    """A form field is text or absent: a form has no null, so the null branch of an optional field goes; an
    optional field sent empty counts as left out, so it takes "" too."""
    branches = [branch for branch in field.get("anyOf", []) if branch.get("type") != "null"]
    if len(branches) == 1:
        rest = {key: value for key, value in field.items() if key not in ("anyOf", "default")}
        field = {**branches[0], **rest}
    if required:
        return field
    description = field.pop("description", "")
    return {"anyOf": [field, {"const": ""}], "description": f"{description} {EMPTY_AS_ABSENT}".strip()}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


_HEADERS = {
    "X-Request-ID": {"description": "Id of this request; quote it to support.", "schema": {"type": "string"}},
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
# On every answer to an authenticated call (api.ratelimit): the caller's per-minute limit and where it stands.
_RATE_LIMIT = {
    "X-RateLimit-Limit": {
        "description": "Calls this credential may make in the window.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {"description": "Calls left in the window.", "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "When the window ends (Unix time, seconds).", "schema": {"type": "integer"}},
    "X-RateLimit-Retry-After": {
        "description": "Seconds until the window ends.",
        "schema": {"type": "integer"},
    },
}


# A file answers a Range request with the bytes asked for; with presigned URLs (an S3 store) it redirects there.
_FILE_RESPONSES: dict[str, Any] = {
    "206": {
        "description": "Partial Content: the byte range a `Range: bytes=...` header asked for (with Content-Range).",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    },
    "302": {
        "description": "Found: when the portal keeps files in an S3 bucket with presigned URLs on, a redirect to "
        "a short-lived URL of the file (Location), signed with the same Content-Type and Content-Disposition.",
    },
}


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
                    # not the form of the portal's own keys (services.idempotency.RESERVED_PREFIXES), in any case
                    "pattern": "^(?![Qq][Uu][Ee][Uu][Ee]-|[Oo][Pp][Tt]-[Oo][Uu][Tt]-[Cc][Oo][Nn][Ff][Ii][Rr][Mm]-)"
                    "([!-~]([ -~]*[!-~])?)?$",
                    "description": "1-200 printable ASCII characters (e.g. a UUID); an empty header counts as no key. "
                    "Keys starting with queue- or opt-out-confirm- are the portal's own (400).",
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
    answered = {**_HEADERS, **_RATE_LIMIT} if route.permission else _HEADERS
    ok: dict[str, Any] = {"description": STATUS_TEXT[route.ok], "headers": dict(answered)}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": _ref(route.response)}}
        if route.image:
            ok["content"][route.image] = {"schema": {"type": "string", "format": "binary"}}
    elif route.csv:
        ok["content"] = {"text/csv": {"schema": {"type": "string"}}}
    elif route.binary:
        # The file as stored, under its own media type.
        ok["content"] = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    elif route.endpoint == "api.openapi_document":
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    elif route.endpoint == "api.docs":
        ok["content"] = {"text/html": {"schema": {"type": "string"}}}
    responses = {str(route.ok): ok}
    if route.accepted is not None:
        responses["202"] = {
            "description": STATUS_TEXT[202],
            "headers": dict(answered),
            "content": {"application/json": {"schema": _ref(route.accepted)}},
        }
    if route.binary:
        responses.update(_FILE_RESPONSES)
    # every authenticated call refuses a query parameter it does not name (400), whatever else it answers
    for status in sorted(set(route.errors) | ({400} if route.permission else set())):
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
            {"name": "Campaigns"},
            {"name": "Webhooks"},
            {"name": "Audit"},
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
