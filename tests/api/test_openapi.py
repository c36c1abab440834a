"""The OpenAPI document and the docs page: complete, consistent with the code, and readable without scripts.

Every answer of the other API tests is also checked against the document (see `Api` in conftest.py).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from portal.api.openapi import ERROR_CODES, ROUTES
from tests.helpers import Api, openapi_document

HERE = Path(__file__).resolve().parent


def _flask_to_openapi(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def _waha_rules(app: Any) -> set[tuple[str, str]]:
    return {
        (method, _flask_to_openapi(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/waha")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def _operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}


def test_openapi_json_is_served_without_credentials(client: Any) -> None:
    response = client.get("/waha/openapi.json")
    assert response.status_code == 200
    assert response.get_json()["openapi"] == "3.1.0"


@pytest.mark.smoke
def test_openapi_lists_every_waha_route(app: Any, client: Any) -> None:
    doc = client.get("/waha/openapi.json").get_json()
    assert _operations(doc) == _waha_rules(app)


def test_route_table_permissions_match_the_views(app: Any) -> None:
    for route in ROUTES:
        view = app.view_functions[route.endpoint]
        assert view.required_permission == route.permission, route.endpoint


def test_route_table_endpoints_serve_their_paths(app: Any) -> None:
    adapter = app.url_map.bind("localhost")
    for route in ROUTES:
        path = route.path.replace("{session_id}", "s-1").replace("{message_id}", "1")
        assert adapter.match(path, method=route.method)[0] == route.endpoint


def test_openapi_declares_bearer_security() -> None:
    doc = openapi_document()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert doc["security"] == [{"bearer": []}]


def test_public_operations_opt_out_of_security() -> None:
    doc = openapi_document()
    assert doc["paths"]["/waha/openapi.json"]["get"]["security"] == []
    assert doc["paths"]["/waha/docs"]["get"]["security"] == []


def test_every_authenticated_operation_documents_auth_errors() -> None:
    for route in ROUTES:
        if route.permission:
            responses = openapi_document()["paths"][route.path][route.method.lower()]["responses"]
            assert {"401", "403", "429"} <= set(responses), route.endpoint


def test_every_error_response_has_the_error_schema() -> None:
    for path, ops in openapi_document()["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)


def test_retry_after_is_documented_on_429_and_503() -> None:
    for ops in openapi_document()["paths"].values():
        for op in ops.values():
            for status in ("429", "503"):
                if status in op["responses"]:
                    assert "Retry-After" in op["responses"][status]["headers"]


def test_every_reference_resolves() -> None:
    doc = openapi_document()
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for ops in openapi_document()["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_request_schemas_forbid_unknown_fields() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for name in ("CreateSessionDto", "SendMessageDto", "MediaDto", "PairingCodeDto", "MediaUploadForm"):
        assert schemas[name]["additionalProperties"] is False, name


def test_seed_fields_are_in_the_dtos() -> None:
    schemas = openapi_document()["components"]["schemas"]
    assert {"sessionName", "engine", "webhookUrl", "webhookEvents", "config"} <= set(
        schemas["CreateSessionDto"]["properties"]
    )
    assert {"to", "text", "metadata"} <= set(schemas["SendMessageDto"]["properties"])
    assert {"id", "externalSessionId", "status", "engine", "metadata", "tenantId", "createdAt", "updatedAt"} <= set(
        schemas["SessionResponseDto"]["properties"]
    )
    assert {"messageId", "status", "to", "text", "timestamp"} <= set(schemas["MessageResponse"]["properties"])


def test_every_documented_error_code_is_exercised_by_a_test() -> None:
    sources = "".join(p.read_text() for p in HERE.glob("test_*.py") if p.name != "test_openapi.py")
    missing = [e.code for e in ERROR_CODES if f'"{e.code}"' not in sources]
    assert missing == []


# ---- the docs page --------------------------------------------------------------------------------------------


class _PageAudit(HTMLParser):
    """Collects what the CSP forbids (inline scripts, style attributes, event handlers) and the ids of sections."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.style_attributes = 0
        self.handlers: list[str] = []
        self.ids: set[str] = set()
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self._in_script_without_src = True
        if "style" in names:
            self.style_attributes += 1
        self.handlers += [name for name in names if name.startswith("on")]
        if names.get("id"):
            self.ids.add(names["id"] or "")
        if tag == "style":
            self.style_attributes += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script_without_src = False

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1


def _docs(client: Any) -> str:
    response = client.get("/waha/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


@pytest.mark.smoke
def test_docs_page_is_served_without_credentials(client: Any) -> None:
    assert "WAHA Portal API" in _docs(client)


def test_docs_page_has_no_inline_scripts_or_styles(client: Any) -> None:
    audit = _PageAudit()
    audit.feed(_docs(client))
    assert (audit.inline_scripts, audit.style_attributes, audit.handlers) == (0, 0, [])


def test_docs_page_describes_every_endpoint(client: Any) -> None:
    audit = _PageAudit()
    page = _docs(client)
    audit.feed(page)
    for route in ROUTES:
        assert route.endpoint.replace(".", "-") in audit.ids, route.endpoint
        assert f"<code>{route.path}</code>" in page


def test_docs_page_lists_every_error_code(client: Any) -> None:
    page = _docs(client)
    for error in ERROR_CODES:
        assert f"<code>{error.code}</code>" in page


def test_docs_page_describes_every_schema(client: Any) -> None:
    audit = _PageAudit()
    audit.feed(_docs(client))
    for name in openapi_document()["components"]["schemas"]:
        assert f"schema-{name}" in audit.ids


def test_docs_page_shows_curl_examples_with_the_server_url(client: Any) -> None:
    page = html.unescape(_docs(client))
    assert 'curl -X POST "http://localhost/waha/sessions"' in page
    assert "Authorization: Bearer $TOKEN" in page


def test_docs_page_allows_only_the_portal_csp(client: Any) -> None:
    response = client.get("/waha/docs")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_check_against_openapi_rejects_an_undocumented_status(app: Any, api: Api) -> None:
    # The checker used by every API test must itself refuse what the document does not promise.
    from tests.helpers import check_against_openapi

    response = api.client.get("/waha/openapi.json")
    response.status_code = 418
    with pytest.raises(AssertionError):
        check_against_openapi(app, "GET", "/waha/openapi.json", response)


def _request_schema(path: str, method: str, media: str) -> Any:
    from jsonschema import Draft202012Validator

    document = openapi_document()
    schema = document["paths"][path][method]["requestBody"]["content"][media]["schema"]
    return Draft202012Validator(dict(schema, components=document["components"]))


def test_a_real_upload_satisfies_the_documented_upload_schema() -> None:
    validator = _request_schema("/waha/sessions/{session_id}/send/media", "post", "multipart/form-data")
    assert validator.is_valid({"file": "PNG...", "to": "+491701234567", "caption": "Our menu"})
    assert not validator.is_valid({"to": "+491701234567"})  # the file is required
    assert not validator.is_valid({"file": "x", "to": "+491701234567", "colour": "red"})


def test_media_documents_url_xor_data() -> None:
    validator = _request_schema("/waha/sessions/{session_id}/send", "post", "application/json")
    base = {"to": "+491701234567", "media": {"type": "image"}}
    by_url = {**base, "media": {"type": "image", "url": "https://example.com/a.png"}}
    inline = {**base, "media": {"type": "document", "data": "aGk=", "mimetype": "text/plain"}}
    both = {
        **base,
        "media": {"type": "image", "url": "https://example.com/a.png", "data": "aGk=", "mimetype": "image/png"},
    }
    assert validator.is_valid(by_url) and validator.is_valid(inline)
    assert not validator.is_valid(both)
    assert not validator.is_valid(base)


@pytest.mark.parametrize(
    "key, valid",
    [("order-1234", True), ("é", False), ("", True), (" x", False), ("a" * 201, False), ("tab\there", False)],
)
def test_idempotency_key_is_documented_as_printable_ascii(key: str, valid: bool) -> None:
    from jsonschema import Draft202012Validator

    params = openapi_document()["paths"]["/waha/sessions"]["post"]["parameters"]
    schema = next(p["schema"] for p in params if p["name"] == "Idempotency-Key")
    assert Draft202012Validator(schema).is_valid(key) is valid


def test_phone_and_cursor_rules_are_documented() -> None:
    from jsonschema import Draft202012Validator

    pairing = openapi_document()["components"]["schemas"]["PairingCodeDto"]
    assert not Draft202012Validator(pairing).is_valid({"phoneNumber": "call me maybe"})
    params = openapi_document()["paths"]["/waha/messages"]["get"]["parameters"]
    cursor = next(p["schema"] for p in params if p["name"] == "cursor")
    assert not Draft202012Validator(cursor).is_valid("not a cursor!")


# The keywords a schema of the document may use (JSON Schema 2020-12 as OpenAPI 3.1 takes it): a pydantic
# constraint it could not translate (`ge`, `le`) would otherwise reach the document as a word no validator reads.
SCHEMA_KEYWORDS = {
    "$ref", "type", "properties", "required", "additionalProperties", "propertyNames", "items", "anyOf", "oneOf",
    "allOf", "not", "if", "then", "else", "enum", "const", "pattern", "format", "minLength", "maxLength", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "minProperties", "maxProperties",
    "default", "description", "title", "examples", "contentEncoding",
}  # fmt: skip


def _schema_keywords(schema: Any) -> set[str]:
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    children = [*schema.get("properties", {}).values(), *schema.get("anyOf", []), *schema.get("oneOf", [])]
    children += [*schema.get("allOf", []), *(schema.get(k) for k in ("items", "additionalProperties", "propertyNames"))]
    children += [schema.get(k) for k in ("not", "if", "then", "else")]
    for child in children:
        found |= _schema_keywords(child)
    return found


def test_schemas_use_only_json_schema_keywords() -> None:
    document = openapi_document()
    schemas = list(document["components"]["schemas"].values())
    for ops in document["paths"].values():
        for op in ops.values():
            schemas += [p["schema"] for p in op.get("parameters", [])]
            schemas += [m["schema"] for m in op.get("requestBody", {}).get("content", {}).values()]
    used = set().union(*(_schema_keywords(schema) for schema in schemas))
    assert used <= SCHEMA_KEYWORDS, used - SCHEMA_KEYWORDS
