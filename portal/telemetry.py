"""Request ids and logging: every response and log line carries the request id."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

from flask import Flask, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class ContextFilter(logging.Filter):
    """Adds request_id, tenant and session (when known) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = getattr(g, "request_id", "-")
            tenant = getattr(g, "tenant", None)
            record.tenant = tenant.slug if tenant is not None else "-"
        else:
            record.request_id = getattr(record, "request_id", "-")
            record.tenant = getattr(record, "tenant", "-")
        return True


def configure_logging(level: str, fmt: str) -> None:
    """Root logging for the process: JSON or text, with the request context filter."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(tenant)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        ))
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_portal", False):
            root.removeHandler(existing)
    handler._portal = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full URLs with query strings (which may carry keys) at DEBUG
    logging.getLogger("urllib3").setLevel(max(logging.getLevelName(level), logging.INFO))


def init_app(app: Flask) -> None:
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    access = logging.getLogger("portal.access")

    @app.before_request
    def assign_request_id() -> None:
        # `g` belongs to the app context, which a test or CLI command may hold open across several requests;
        # every request starts from an empty one, as it does in production.
        vars(g).clear()
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def add_request_id(response):  # type: ignore[no-untyped-def]
        request_id = getattr(g, "request_id", None)
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        started = getattr(g, "request_started", None)
        if started is not None and request.endpoint != "static":
            access.info("%s %s %s %.1fms", request.method, request.path, response.status_code,
                        (time.perf_counter() - started) * 1000)
        return response
