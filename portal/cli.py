"""Command line (Flask CLI): thin doors into the same services the portal and API use."""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from portal.models import utcnow
from portal.permissions import PERMISSIONS, ROLES
from portal.services import servers as servers_service
from portal.services import tenants as tenants_service
from portal.services import tokens as tokens_service
from portal.services.audit import Actor
from portal.services.errors import ServiceError

CLI_ACTOR = Actor(type="system", label="cli")

DEMO_TENANT = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-123"

tenants_cli = AppGroup("tenants", help="Manage tenants.")
users_cli = AppGroup("users", help="Manage users and their roles.")
servers_cli = AppGroup("servers", help="Manage WAHA servers.")
tokens_cli = AppGroup("tokens", help="Manage API tokens.")
demo_cli = AppGroup("demo", help="Demo data for trying the portal.")


def _fail(exc: ServiceError) -> NoReturn:
    raise click.ClickException(exc.message)


@tenants_cli.command("create")
@click.option("--slug", required=True, help="Short unique id, e.g. acme.")
@click.option("--name", required=True, help="Display name.")
@click.option("--max-sessions", default=None, type=click.IntRange(min=1), help="Override of the plan's session limit.")
@click.option(
    "--send-rate", default=30, show_default=True, type=click.IntRange(min=1), help="Messages per minute per session."
)
def create_tenant(slug: str, name: str, max_sessions: int | None, send_rate: int) -> None:
    """Create a tenant."""
    try:
        tenant = tenants_service.create_tenant(
            slug, name, CLI_ACTOR, max_sessions=max_sessions, send_rate_per_minute=send_rate
        )
    except ServiceError as exc:
        _fail(exc)
    click.echo(f"Created tenant '{tenant.slug}' ({tenant.name}), id {tenant.id}.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--tenant", "tenant_slug", help="Tenant slug to add the user to.")
@click.option("--role", type=click.Choice(ROLES), default="operator", show_default=True)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="At least 12 characters, not a common password; prompted when omitted.",
)
@click.option("--platform-admin", is_flag=True, help="May manage every tenant and WAHA server.")
def create_user(email: str, tenant_slug: str | None, role: str, password: str, platform_admin: bool) -> None:
    """Create a user, optionally with a role in a tenant."""
    try:
        tenant = tenants_service.get_tenant_by_slug(tenant_slug) if tenant_slug else None
        user = tenants_service.create_user(email, password, CLI_ACTOR, is_platform_admin=platform_admin)
        if tenant is not None:
            tenants_service.set_membership(tenant, user, role, CLI_ACTOR)
    except ServiceError as exc:
        _fail(exc)
    where = f" as {role} in '{tenant.slug}'" if tenant is not None else ""
    click.echo(f"Created user {user.email}{where}{' (platform admin)' if platform_admin else ''}.")


@users_cli.command("grant")
@click.option("--email", required=True)
@click.option("--tenant", "tenant_slug", required=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
def grant_role(email: str, tenant_slug: str, role: str) -> None:
    """Give an existing user a role in a tenant."""
    try:
        tenant = tenants_service.get_tenant_by_slug(tenant_slug)
        user = tenants_service.get_user_by_email(email)
        if user is None:
            raise click.ClickException(f"No user with email '{email}'.")
        tenants_service.set_membership(tenant, user, role, CLI_ACTOR)
    except ServiceError as exc:
        _fail(exc)
    click.echo(f"{user.email} is now {role} in '{tenant.slug}'.")


@servers_cli.command("add")
@click.option("--name", required=True)
@click.option("--url", "base_url", required=True, help="Base URL, e.g. http://waha:3000")
@click.option("--api-key", required=True, envvar="WAHA_SERVER_API_KEY")
@click.option(
    "--capacity", default=50, show_default=True, type=click.IntRange(min=1), help="Sessions this server may hold."
)
def add_server(name: str, base_url: str, api_key: str, capacity: int) -> None:
    """Register a WAHA server."""
    try:
        server = servers_service.add_server(name, base_url, api_key, CLI_ACTOR, capacity=capacity)
    except ServiceError as exc:
        _fail(exc)
    click.echo(f"Added WAHA server '{server.name}' at {server.base_url} (capacity {server.capacity}), id {server.id}.")


@servers_cli.command("list")
def list_servers() -> None:
    """List WAHA servers with their health and session count."""
    counts = servers_service.session_counts()
    for s in servers_service.list_servers():
        flags = " draining" if s.is_draining else "" if s.is_enabled else " disabled"
        click.echo(f"{s.id}\t{s.name}\t{s.base_url}\t{s.health}\t{counts.get(s.id, 0)}/{s.capacity}{flags}")


@tokens_cli.command("create")
@click.option("--tenant", "tenant_slug", required=True)
@click.option("--name", required=True)
@click.option(
    "--scopes",
    multiple=True,
    type=click.Choice(sorted(PERMISSIONS)),
    help="Repeat for several; the API's scopes (sessions, messages, webhooks) when omitted.",
)
@click.option("--expires-days", type=click.IntRange(min=1), help="Days until the token expires.")
def create_token(tenant_slug: str, name: str, scopes: tuple[str, ...], expires_days: int | None) -> None:
    """Create an API token and print its secret (shown once)."""
    try:
        tenant = tenants_service.get_tenant_by_slug(tenant_slug)
        expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None
        issued = tokens_service.create_token(tenant, name, list(scopes), CLI_ACTOR, expires_at=expires_at)
    except ServiceError as exc:
        _fail(exc)
    click.echo(
        f"Created token '{issued.token.name}' for '{tenant.slug}' with scopes {', '.join(issued.token.scopes)}.",
        err=True,
    )
    click.echo("The secret is shown once; store it now:", err=True)
    click.echo(issued.secret)


@demo_cli.command("seed")
def seed_demo() -> None:
    """Create the demo tenant and its owner login (does nothing when they exist)."""
    servers_service.ensure_default_server()
    try:
        tenant = tenants_service.get_tenant_by_slug(DEMO_TENANT)
    except ServiceError:
        tenant = tenants_service.create_tenant(DEMO_TENANT, "Demo Company", CLI_ACTOR)
    user = tenants_service.get_user_by_email(DEMO_EMAIL)
    if user is None:
        user = tenants_service.create_user(
            DEMO_EMAIL, DEMO_PASSWORD, CLI_ACTOR, name="Demo Owner", is_platform_admin=True
        )
    if tenants_service.membership_for(user.id, tenant.id) is None:
        tenants_service.set_membership(tenant, user, "owner", CLI_ACTOR)
    click.echo(f"Demo tenant '{tenant.slug}' is ready. Sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}")


@click.command("check-config")
def check_config() -> None:
    """Print every configuration problem (production refuses to start with any)."""
    problems = current_app.config.get("CONFIG_PROBLEMS", [])
    for problem in problems:
        click.echo(problem)
    if problems:
        raise SystemExit(1)
    click.echo("Configuration is valid.")


def init_app(app: Flask) -> None:
    for group in (tenants_cli, users_cli, servers_cli, tokens_cli, demo_cli):
        app.cli.add_command(group)
    app.cli.add_command(check_config)
    from portal.storage.migrate import media_cli

    app.cli.add_command(media_cli)
    from portal.jobs import cli as jobs_cli

    jobs_cli.init_app(app)  # worker, scheduler, jobs, events
