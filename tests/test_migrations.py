"""The schema comes from one Alembic history that upgrades and downgrades cleanly."""

import os
from typing import Any

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
            # partitioned: the global unique keys live in key tables (migration 0011)
            assert inspector.get_pk_constraint("message_idempotency_keys")["constrained_columns"] == [
                "tenant_id",
                "idempotency_key",
            ]
            assert inspector.get_pk_constraint("message_waha_ids")["constrained_columns"] == [
                "session_id",
                "waha_message_id",
            ]
            assert inspector.get_pk_constraint("webhook_event_keys")["constrained_columns"] == ["event_id"]
            db.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_models_and_migration_agree(app):
    """A model change without a migration would be caught here (autogenerate finds no difference)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from portal.services.partitions import include_in_comparison

    with app.app_context(), db.engine.connect() as conn:
        # PostgreSQL partitions messages and webhook_events (migration 0011): what only it has is skipped
        opts = {"compare_type": False, "include_object": include_in_comparison}
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def _backfill_url(tmp_path, backend: str) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'backfill.db'}", None
    name = make_url(os.environ.get("TEST_DATABASE_URL", "postgresql://x/portal_test")).database + "_backfill"
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", (admin, name)


def _defaults(model: type) -> dict[str, object]:
    """The Python-side defaults of a model's columns (what the ORM would have filled in)."""
    values: dict[str, object] = {}
    for column in model.__table__.columns:  # type: ignore[attr-defined]
        default = column.default
        if default is None or column.primary_key:
            continue
        values[column.name] = default.arg(None) if default.is_callable else default.arg
    return values


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_inbox_migration_builds_chats_and_contacts_from_stored_messages(tmp_path, backend):
    from datetime import UTC, datetime, timedelta

    from portal.models import Chat, Contact, Tenant, WahaServer, WahaSession

    url, admin = _backfill_url(tmp_path, backend)
    try:
        app = create_app(environ_for_tests(DATABASE_URL=url))
        with app.app_context():
            upgrade(revision="0007")
            # Rows written as the schema stood at 0007 (the models have grown columns since).
            table = {
                name: sa.Table(name, sa.MetaData(), autoload_with=db.engine)
                for name in ("tenants", "waha_servers", "waha_sessions", "messages")
            }
            now = datetime(2026, 1, 1, tzinfo=UTC)
            stamps = {"created_at": now, "updated_at": now}

            def insert(table_name: str, /, **values: object) -> object:
                row = {**stamps, **values}
                known = {c.name for c in table[table_name].columns}
                return db.session.execute(
                    sa.insert(table[table_name]).values({k: v for k, v in row.items() if k in known})
                ).inserted_primary_key[0]

            tenant_id = insert("tenants", **{**_defaults(Tenant), "slug": "acme", "name": "Acme"})
            server = {**_defaults(WahaServer), "name": "s", "base_url": "http://waha", "api_key": "k"}
            server_id = insert("waha_servers", **server)
            session_id = "sess-backfill"
            session_row = {
                **_defaults(WahaSession),
                "id": session_id,
                "tenant_id": tenant_id,
                "server_id": server_id,
                "name": "n",
                "external_name": "n",
                "hmac_key": "k",
                "config": {},
            }
            insert("waha_sessions", **session_row)
            start = now
            rows = [
                ("in", "491701111111@c.us", "first", None, None),
                ("out", "491701111111@c.us", None, {"kind": "image", "caption": "menu"}, None),
                ("in", "491702222222@c.us", "deleted", None, start),
                ("out", "491703333333@c.us", "only sent", None, None),
                ("in", "120363025246125486@g.us", "group", None, None),
                ("in", "status@broadcast", "status", None, None),
            ]
            for n, (direction, chat_id, body, media, revoked) in enumerate(rows):
                insert(
                    "messages",
                    tenant_id=tenant_id,
                    session_id=session_id,
                    direction=direction,
                    source="api",
                    chat_id=chat_id,
                    from_me=direction == "out",
                    body=body,
                    media=media,
                    status="READ" if direction == "out" else "DEVICE",
                    revoked_at=revoked,
                    waha_message_id=f"m{n}",
                    metadata={},
                    created_at=start + timedelta(minutes=n),
                )
            db.session.commit()

            upgrade()

            chats = {c.chat_id: c for c in db.session.scalars(sa.select(Chat))}
            assert set(chats) == {
                "491701111111@c.us",
                "491702222222@c.us",
                "491703333333@c.us",
                "120363025246125486@g.us",
            }
            first = chats["491701111111@c.us"]
            assert (first.last_kind, first.last_preview, first.last_from_me, first.last_status) == (
                "image",
                "menu",
                True,
                "READ",
            )
            assert first.created_at == start and first.last_activity_at == start + timedelta(minutes=1)
            assert (chats["491702222222@c.us"].last_kind, chats["491702222222@c.us"].last_preview) == ("revoked", None)
            assert all(c.unread_count == 0 and c.status == "open" for c in chats.values())
            people = {c.chat_id: c for c in db.session.scalars(sa.select(Contact))}
            assert set(people) == {"491701111111@c.us", "491702222222@c.us", "491703333333@c.us"}
            assert (people["491701111111@c.us"].phone, people["491701111111@c.us"].wa_exists) == ("491701111111", True)
            assert people["491703333333@c.us"].wa_exists is None and people["491703333333@c.us"].tags == []
            db.session.remove()
            db.engine.dispose()
    finally:
        if admin is not None:
            engine, name = admin
            with engine.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
