"""/waha/health, the OpenAPI document and the docs page rendered from it."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from flask import Response, jsonify, render_template, request

from portal.api import bp
from portal.api.auth import api_route, public
from portal.api.common import send
from portal.api.openapi import ERROR_CODES, ROUTES, ApiRoute, build_document
from portal.api.schemas import HealthResponse, HealthStatus, ServerHealth
from portal.services.health import waha_health


@bp.get("/health")
@api_route("sessions:read")
def health() -> Response:
    servers = [
        ServerHealth(
            name=row["name"],
            ok=bool(row.get("ok")),
            version=row.get("version"),
            engine=row.get("engine"),
            tier=row.get("tier"),
            latencyMs=row.get("latency_ms"),
        )
        for row in waha_health()
    ]
    up = sum(1 for server in servers if server.ok)
    status: HealthStatus = "ok" if servers and up == len(servers) else ("down" if up == 0 else "degraded")
    return send(HealthResponse(status=status, servers=servers))


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    # The document depends on code only, so one build per process is enough.
    return build_document()


@bp.get("/openapi.json")
@public
def openapi_document() -> Response:
    response = jsonify(_document())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def type_label(prop: dict[str, Any]) -> tuple[str, str | None]:
    """A short type for a JSON schema property, and the schema it links to (if any)."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return name, name
    if "anyOf" in prop:
        parts = [type_label(p) for p in prop["anyOf"] if p.get("type") != "null"]
        nullable = any(p.get("type") == "null" for p in prop["anyOf"])
        label = " | ".join(p[0] for p in parts) + (" | null" if nullable else "")
        return label, next((p[1] for p in parts if p[1]), None)
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"]), None
    if "const" in prop:
        return json.dumps(prop["const"]), None
    kind = prop.get("type", "any")
    if kind == "array":
        inner, link = type_label(prop.get("items", {}))
        return f"array of {inner}", link
    if prop.get("format") in ("date-time", "binary"):
        return f"{kind} ({prop['format']})", None
    return str(kind), None


def schema_rows(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per property of a component schema, for the docs page tables."""
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        label, link = type_label(prop)
        # Limits of a nullable field sit in its non-null branch.
        branches = [prop] + [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
        limits = [
            f"{key} {b[key]}" for b in branches for key in ("minLength", "maxLength", "minimum", "maximum") if key in b
        ]
        rows.append(
            {
                "name": name,
                "type": label,
                "link": link,
                "required": name in required,
                "description": prop.get("description", ""),
                "limits": ", ".join(limits),
                "default": json.dumps(prop["default"]) if "default" in prop and prop["default"] is not None else "",
            }
        )
    return rows


def curl_example(route: ApiRoute, base_url: str) -> str:
    """A copy-paste curl line for one endpoint."""
    path = route.path.replace("{session_id}", "$SESSION_ID").replace("{message_id}", "$MESSAGE_ID")
    lines = [f'curl -X {route.method} "{base_url}{path}"']
    if route.permission:
        lines.append('-H "Authorization: Bearer $TOKEN"')
    if route.idempotent:
        lines.append('-H "Idempotency-Key: $(uuidgen)"')
    if route.multipart:
        lines += ['-F "file=@photo.jpg"', '-F "to=+491701234567"', '-F "caption=Our menu"']
    elif route.body is not None:
        lines.append('-H "Content-Type: application/json"')
        lines.append("-d '" + json.dumps(route.example or {}) + "'")
    return " \\\n     ".join(lines)


@bp.get("/docs")
@public
def docs() -> str:
    document = _document()
    base_url = request.host_url.rstrip("/")
    return render_template(
        "api/docs.html",
        doc=document,
        routes=ROUTES,
        error_codes=ERROR_CODES,
        base_url=base_url,
        schemas={name: schema_rows(schema) for name, schema in document["components"]["schemas"].items()},
        schema_docs={name: schema.get("description", "") for name, schema in document["components"]["schemas"].items()},
        curl={route.endpoint: curl_example(route, base_url) for route in ROUTES},
        operation=lambda route: document["paths"][route.path][route.method.lower()],
        type_label=type_label,
    )
