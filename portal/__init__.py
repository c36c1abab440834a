"""WAHA Portal: a multi-tenant front office for WhatsApp sessions that run on WAHA."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from portal.config import ROOT, build_config, flask_settings


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` is an environment-like mapping (strings, as in os.environ) that replaces
    the process environment, plus optional Flask keys that override the result."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )
    environ = None
    overrides: dict[str, Any] = {}
    if config is not None:
        environ = {k: v for k, v in config.items() if isinstance(v, str)}
        overrides = {k: v for k, v in config.items() if not isinstance(v, str)}
    values = build_config(environ, Path(app.instance_path))
    app.config.update(values)
    app.config.update(flask_settings(values))
    app.config.update(overrides)

    from portal import converters, dbengines, errors, extensions, i18n, inputs, proxy, telemetry, tenancy, webhooks
    from portal.models.base import configure_encryption

    telemetry.init_app(app)
    webhooks.mount(app)  # /webhooks: the lean receiver (no cookie session, CSRF, login or limiter hooks)
    proxy.init_app(app)  # TRUSTED_PROXIES: request.remote_addr is the real client from here on
    converters.init_app(app)
    inputs.init_app(app)  # before CSRF and the rate limiter: malformed requests stop here
    configure_encryption(app.config["ENCRYPTION_KEY"] or app.config["SECRET_KEY"])
    extensions.db.init_app(app)
    dbengines.init_app(app, extensions.db)  # the autocommit engine; idle connections pinged before use
    extensions.migrate.init_app(
        app, extensions.db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True
    )
    extensions.csrf.init_app(app)
    extensions.htmx.init_app(app)
    i18n.init_app(app)  # _() in templates; locale and time zone per user
    extensions.limiter.init_app(app)
    extensions.redis_store.init_app(app)
    tenancy.init_app(app)
    errors.init_app(app)

    from portal import jobs, security, static_assets

    jobs.init_app(app)
    campaigns_init(app)
    security.init_app(app)
    static_assets.init_app(app)  # hashed static addresses cached for a year; compressed HTML and JSON
    _register_blueprints(app)
    # Every route is known now: mask the credential in paths such as /account/reset/<token> in all log lines.
    telemetry.register_token_routes(rule.rule for rule in app.url_map.iter_rules())

    from portal import cli

    cli.init_app(app)
    return app


def campaigns_init(app: Flask) -> None:
    """Campaigns and opt-outs plug their gates and settle hook into the send queue; so does the plans' quota."""
    from portal.services import campaigns, quotas

    campaigns.register()
    quotas.register()


def _register_blueprints(app: Flask) -> None:
    from portal import ops
    from portal.api import bp as api_bp
    from portal.web import init_app as init_web

    init_web(app)
    ops.init_app(app)  # /healthz, /readyz, /metrics (CSRF-exempt), `flask fleet`
    app.register_blueprint(api_bp)
    extensions_csrf_exempt(app, api_bp)


def extensions_csrf_exempt(app: Flask, *blueprints: Any) -> None:
    """Token-authenticated API calls carry no cookie, so no CSRF token (the webhooks have no CSRF hook at all)."""
    from portal.extensions import csrf

    for blueprint in blueprints:
        csrf.exempt(blueprint)
