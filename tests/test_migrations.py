"""The schema comes from one Alembic history that upgrades and downgrades cleanly."""

import os

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy.engine import make_url

from portal import create_app
from portal.config import environ_for_tests
from portal.extensions import db
from tests.helpers import ROOT


def test_history_has_a_single_head():
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    assert len(ScriptDirectory.from_config(cfg).get_heads()) == 1


@pytest.mark.timeout(300)  # creates and drops a database: slow when the machine is busy
def test_upgrade_downgrade_upgrade_on_postgresql(tmp_path):
    # a name of its own per test database, so that suites on other test databases can run beside this one
    name = make_url(os.environ.get("TEST_DATABASE_URL", "postgresql://x/portal_test")).database + "_migrations"
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        app = create_app(environ_for_tests(DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"))
        with app.app_context():
            upgrade()
            tables = set(sa.inspect(db.engine).get_table_names())
            assert {"tenants", "waha_sessions", "messages", "webhook_events", "audit_events"} <= tables
            downgrade(revision="base")
            assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
            upgrade()
            inspector = sa.inspect(db.engine)
            uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("messages")}
            assert ("session_id", "waha_message_id") in uniques
            assert ("tenant_id", "idempotency_key") in uniques
            db.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_models_and_migration_agree(app):
    """A model change without a migration would be caught here (autogenerate finds no difference)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, db.metadata)
    assert diff == []
