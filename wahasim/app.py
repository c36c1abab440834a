"""Flask application factory of the simulator."""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from . import errors
from .errors import ControlError, SimError
from .settings import Settings
from .simulator import Simulator
from .web import json_response

log = logging.getLogger("wahasim")

BODY_LIMIT = 50 * 1024 * 1024  # WAHA's request body limit


def _json(data, status: int):
    return json_response(data, status)


def create_app(settings: Settings | dict | None = None, simulator: Simulator | None = None) -> Flask:
    """Build the fake WAHA server. `settings` may be a Settings or a dict of its fields."""
    if not isinstance(settings, Settings):
        settings = Settings.from_mapping(settings)
    app = Flask("wahasim")
    # WAHA answers with JSON.stringify: keys in insertion order, UTF-8 kept as is.
    assert isinstance(app.json, DefaultJSONProvider)
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.config["MAX_CONTENT_LENGTH"] = BODY_LIMIT
    app.extensions["wahasim"] = simulator or Simulator(settings)

    from .api import bp as api_bp
    from .control import bp as control_bp

    app.register_blueprint(control_bp)
    app.register_blueprint(api_bp)

    @app.errorhandler(SimError)
    def sim_error(exc: SimError):
        return _json(exc.body, exc.status)

    @app.errorhandler(ControlError)
    def control_error(exc: ControlError):
        return _json({"error": exc.message}, exc.status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code in (404, 405):
            # Nest has no 405: an unmatched method is an unknown route.
            return _json(errors.unknown_route(request.method, request.path).body, 404)
        if exc.code == 413:
            return _json(errors.nest(413, "request entity too large").body, 413)
        return _json(
            errors.nest(exc.code or 500, exc.description or errors.phrase(exc.code or 500)).body, exc.code or 500
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        body = request.get_json(silent=True) if request.get_data(cache=True) else None
        simulator_ = app.extensions["wahasim"]
        return _json(
            {
                "statusCode": 500,
                "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "exception": {"message": str(exc), "name": "Error", "stack": "".join(traceback.format_exception(exc))},
                "request": {
                    "path": request.path,
                    "method": request.method,
                    "body": body or {},
                    "query": request.args.to_dict(),
                },
                "version": {k: v for k, v in simulator_.environment().items() if k != "worker"},
            },
            500,
        )

    return app
