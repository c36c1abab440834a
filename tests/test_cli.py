"""The command line: each command says what it did and refuses bad input clearly."""

import pytest

from portal.extensions import db
from portal.models import ApiToken, Membership, Tenant, User, WahaServer


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


@pytest.mark.smoke
def test_tenants_create_prints_the_new_tenant(cli, ctx):
    result = cli.invoke(args=["tenants", "create", "--slug", "globex", "--name", "Globex"])
    assert result.exit_code == 0
    assert "Created tenant 'globex'" in result.output
    assert db.session.scalar(db.select(Tenant).where(Tenant.slug == "globex")) is not None


def test_tenants_create_refuses_a_bad_slug(cli, ctx):
    result = cli.invoke(args=["tenants", "create", "--slug", "Not A Slug", "--name", "X"])
    assert result.exit_code != 0
    assert "Slug must be" in result.output


def test_tenants_create_refuses_a_taken_slug(cli, tenant):
    result = cli.invoke(args=["tenants", "create", "--slug", "acme", "--name", "Again"])
    assert result.exit_code != 0
    assert "already exists" in result.output


def test_users_create_adds_the_role(cli, tenant):
    result = cli.invoke(
        args=[
            "users",
            "create",
            "--email",
            "ops@acme.example.com",
            "--tenant",
            "acme",
            "--role",
            "admin",
            "--password",
            "long-enough-password",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "as admin in 'acme'" in result.output
    user = db.session.scalar(db.select(User).where(User.email == "ops@acme.example.com"))
    membership = db.session.scalar(db.select(Membership).where(Membership.user_id == user.id))
    assert membership.role == "admin"


def test_users_create_refuses_a_short_password(cli, tenant):
    result = cli.invoke(args=["users", "create", "--email", "ops@acme.example.com", "--password", "short"])
    assert result.exit_code != 0
    assert "at least 12 characters" in result.output


def test_users_create_refuses_a_common_password(cli, tenant):
    result = cli.invoke(args=["users", "create", "--email", "ops@acme.example.com", "--password", "password1234"])
    assert result.exit_code != 0
    assert "most common passwords" in result.output
    assert db.session.scalar(db.select(User).where(User.email == "ops@acme.example.com")) is None


def test_users_create_refuses_an_unknown_tenant(cli, ctx):
    result = cli.invoke(
        args=["users", "create", "--email", "a@b.example.com", "--tenant", "nope", "--password", "long-enough-password"]
    )
    assert result.exit_code != 0
    assert "No tenant with slug 'nope'" in result.output


def test_servers_add_registers_a_server(cli, ctx):
    result = cli.invoke(
        args=["servers", "add", "--name", "eu-2", "--url", "http://waha-2:3000", "--api-key", "k2", "--capacity", "20"]
    )
    assert result.exit_code == 0, result.output
    server = db.session.scalar(db.select(WahaServer).where(WahaServer.name == "eu-2"))
    assert server.capacity == 20 and server.api_key == "k2"


def test_server_api_key_is_encrypted_at_rest(cli, ctx):
    cli.invoke(args=["servers", "add", "--name", "eu-3", "--url", "http://waha-3:3000", "--api-key", "plain-key"])
    raw = db.session.execute(db.text("SELECT api_key FROM waha_servers WHERE name = 'eu-3'")).scalar()
    assert "plain-key" not in raw


def test_tokens_create_prints_the_secret_once_and_stores_its_hash(cli, tenant):
    result = cli.invoke(
        args=[
            "tokens",
            "create",
            "--tenant",
            "acme",
            "--name",
            "ci",
            "--scopes",
            "sessions:read",
            "--scopes",
            "messages:send",
        ]
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("wp_")
    token = db.session.scalar(db.select(ApiToken))
    assert token.scopes == ["messages:send", "sessions:read"]
    assert secret not in token.secret_hash and len(token.secret_hash) == 64


def test_tokens_create_refuses_an_unknown_scope(cli, tenant):
    result = cli.invoke(args=["tokens", "create", "--tenant", "acme", "--name", "ci", "--scopes", "everything"])
    assert result.exit_code != 0
    assert "everything" in result.output


@pytest.mark.smoke
def test_demo_seed_is_repeatable_and_prints_the_login(cli, ctx):
    first = cli.invoke(args=["demo", "seed"])
    second = cli.invoke(args=["demo", "seed"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert "demo@example.com / demo-password-123" in second.output
    assert db.session.scalar(db.select(db.func.count(Tenant.id))) == 1


def test_tokens_create_without_scopes_grants_the_api_scopes_only(cli, tenant):
    result = cli.invoke(args=["tokens", "create", "--tenant", "acme", "--name", "integration"])
    assert result.exit_code == 0, result.output
    token = db.session.scalar(db.select(ApiToken))
    assert "messages:send" in token.scopes and "sessions:write" in token.scopes
    assert not {"team:manage", "tokens:manage", "settings:manage"} & set(token.scopes)
