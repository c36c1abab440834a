"""Operations endpoints and commands: /healthz, /readyz, /metrics and `flask fleet ...`.

/healthz and /readyz need no credentials (load balancers and orchestrators call them); /readyz shows its
errors and per-server probes (which name internal hosts) only to the callers /metrics admits, everyone else gets
the status and one ok flag per check. /metrics needs `Authorization: Bearer <METRICS_TOKEN>` when METRICS_TOKEN
is set, and otherwise answers loopback callers only.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

import click
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.cli import AppGroup

from portal import metrics
from portal.errors import error_response
from portal.models import WahaServer
from portal.proxy import is_local_request
from portal.services import fleet
from portal.services.audit import Actor
from portal.services.errors import ServiceError

bp = Blueprint("ops", __name__)

_STARTED_AT = time.time()


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and serving; touches nothing else."""
    response = jsonify({"status": "ok", "uptime_s": round(time.time() - _STARTED_AT, 1)})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/readyz")
def readyz() -> Response:
    """Ready for traffic: database, Redis and at least one enabled WAHA server answer. 503 otherwise."""
    from portal.services.health import readiness

    checks = readiness()
    ready = all(check["ok"] for check in checks.values())
    if not (_has_metrics_token() or is_local_request()):
        # Errors and per-server probes name internal hosts and URLs: only operators see them.
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    response = jsonify({"status": "ready" if ready else "not_ready", "checks": checks})
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def _has_metrics_token() -> bool:
    """True when METRICS_TOKEN is set and this request sends it as its bearer credential."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@bp.get("/metrics")
def metrics_view() -> Response:
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        if not _has_metrics_token():
            response = error_response(401, "unauthorized", "Send Authorization: Bearer <METRICS_TOKEN>.")
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not is_local_request():
        return error_response(403, "forbidden", "Set METRICS_TOKEN to scrape metrics from another host.")
    return metrics.metrics_response()


# ---------------------------------------------------------------------- CLI

fleet_cli = AppGroup("fleet", help="Check, drain and undrain WAHA servers.")
CLI_ACTOR = Actor(type="system", label="cli")


@fleet_cli.command("check")
def fleet_check() -> None:
    """Probe every WAHA server now, store health and version, warn about versions before 2026.6.1."""
    results = fleet.check_servers(warn_always=True)
    if not results:
        click.echo("No WAHA server is registered.")
        return
    for r in results:
        version = f"{r['version'] or '?'} {r['engine'] or ''} {r['tier'] or ''}".strip()
        line = f"{r['name']}\t{r['base_url']}\t{r['health']}\t{version}"
        if r["outdated"]:
            line += "\tOUTDATED: upgrade to 2026.6.1 or later"
        if r["error"]:
            line += f"\t{r['error']}"
        click.echo(line)
    if not any(r["health"] == "ok" for r in results):
        raise SystemExit(1)


@fleet_cli.command("drain")
@click.argument("server")
def fleet_drain(server: str) -> None:
    """Stop placing new sessions on SERVER (name or id); its sessions keep running."""
    _fleet_change(fleet.drain_server, server, "is draining: no new sessions go there.")


@fleet_cli.command("undrain")
@click.argument("server")
def fleet_undrain(server: str) -> None:
    """Let SERVER (name or id) take new sessions again."""
    _fleet_change(fleet.undrain_server, server, "takes new sessions again.")


def _fleet_change(change: Callable[[int, Actor], WahaServer], server: str, outcome: str) -> None:
    """Apply `change` to SERVER (name or id) as the CLI and say `outcome` of it; a ServiceError is the CLI's error."""
    try:
        row = change(fleet.find_server(server).id, CLI_ACTOR)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"WAHA server '{row.name}' {outcome}")


def init_app(app: Flask) -> None:
    """Metrics instrumentation, the ops blueprint (no CSRF: GET only, no cookies needed) and the fleet CLI."""
    from portal.extensions import csrf

    metrics.init_app(app)
    app.register_blueprint(bp)
    csrf.exempt(bp)
    app.cli.add_command(fleet_cli)
