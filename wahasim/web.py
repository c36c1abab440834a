"""Response helpers: JSON exactly as Express/Nest writes it."""

from __future__ import annotations

import json

from flask import Response

JSON_TYPE = "application/json; charset=utf-8"


def json_response(data, status: int = 200) -> Response:
    """Compact JSON, keys in insertion order, UTF-8 unescaped, no trailing newline."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return Response(body.encode("utf-8"), status=status, content_type=JSON_TYPE)


def empty_response(status: int = 200) -> Response:
    """What Nest sends for a handler returning null/undefined: no body, no content type."""
    response = Response(b"", status=status)
    del response.headers["Content-Type"]
    return response
