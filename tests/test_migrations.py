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

            tenant_id = insert("tenants", **{**_defaults(Tenant), "max_sessions": 10, "slug": "acme", "name": "Acme"})
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


def _relkind(table: str) -> str:
    kind = db.session.execute(sa.text("SELECT relkind FROM pg_class WHERE relname = :t"), {"t": table}).scalar_one()
    db.session.commit()
    return kind


def _index_definitions() -> set[tuple[str, str]]:
    """(name, definition) of the plain indexes of messages and webhook_events, unique constraints aside."""
    rows = db.session.execute(
        sa.text(
            "SELECT indexname, replace(indexdef, ' ON ONLY ', ' ON ') FROM pg_indexes "
            "WHERE tablename IN ('messages', 'webhook_events') AND indexname NOT LIKE 'uq_%' "
            "AND indexname NOT LIKE 'pk_%'"
        )
    ).all()
    db.session.commit()
    return {(str(name), str(definition)) for name, definition in rows}


def _snapshot() -> dict[str, list[tuple]]:
    """Every row of the converted tables and of the rows pointing into them, as plain tuples."""
    queries = {
        "messages": "SELECT id, created_at, idempotency_key, waha_message_id, reply_to_id, body FROM messages",
        "webhook_events": "SELECT id, received_at, event_id, status FROM webhook_events",
        "chats": "SELECT id, last_message_id FROM chats",
        "webhook_deliveries": "SELECT id, webhook_event_id FROM webhook_deliveries",
    }
    rows = {name: sorted(tuple(r) for r in db.session.execute(sa.text(sql))) for name, sql in queries.items()}
    db.session.commit()  # no lock held while the migration rebuilds the tables
    return rows


def _before_partitions() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    down = ScriptDirectory.from_config(cfg).get_revision("0011").down_revision
    assert isinstance(down, str)
    return down


@pytest.mark.timeout(300)
def test_partitions_migration_moves_the_rows_and_downgrades_back(tmp_path):
    """0011 on data: rows of two months land in their partitions with their ids, keys and references; the unique
    keys still refuse a repeat; new ids continue the sequence; the downgrade gives the plain tables back."""
    from datetime import UTC, datetime

    from portal.models import Tenant, WahaServer, WahaSession

    url, admin = _backfill_url(tmp_path, "postgresql")
    try:
        app = create_app(environ_for_tests(DATABASE_URL=url))
        with app.app_context():
            upgrade(revision=_before_partitions())
            tables = {
                name: sa.Table(name, sa.MetaData(), autoload_with=db.engine)
                for name in (
                    "tenants",
                    "waha_servers",
                    "waha_sessions",
                    "messages",
                    "webhook_events",
                    "chats",
                    "webhook_deliveries",
                )
            }
            jan, feb = datetime(2026, 1, 20, tzinfo=UTC), datetime(2026, 2, 3, tzinfo=UTC)

            def insert(table_name: str, /, **values: object) -> object:
                row = {"created_at": jan, "updated_at": jan, **values}
                known = {c.name for c in tables[table_name].columns}
                return db.session.execute(
                    sa.insert(tables[table_name]).values({k: v for k, v in row.items() if k in known})
                ).inserted_primary_key[0]

            tenant_id = insert("tenants", **{**_defaults(Tenant), "max_sessions": 10, "slug": "acme", "name": "Acme"})
            server_id = insert(
                "waha_servers", **{**_defaults(WahaServer), "name": "s", "base_url": "http://w", "api_key": "k"}
            )
            insert(
                "waha_sessions",
                **{
                    **_defaults(WahaSession),
                    "id": "sess-p",
                    "tenant_id": tenant_id,
                    "server_id": server_id,
                    "name": "n",
                    "external_name": "n",
                    "hmac_key": "k",
                    "config": {},
                },
            )
            common = {
                "tenant_id": tenant_id,
                "session_id": "sess-p",
                "direction": "out",
                "source": "api",
                "chat_id": "491701111111@c.us",
                "from_me": True,
                "status": "READ",
                "metadata": {},
            }
            first = insert("messages", **common, body="january", idempotency_key="key-1", waha_message_id="w1")
            insert(
                "messages",
                **common,
                body="february",
                idempotency_key="key-2",
                waha_message_id="w2",
                reply_to_id=first,
                created_at=feb,
                updated_at=feb,
            )
            insert(
                "chats",
                tenant_id=tenant_id,
                session_id="sess-p",
                chat_id="491701111111@c.us",
                last_message_id=first,
                last_activity_at=jan,
                unread_count=0,
                status="open",
            )
            event_id = insert(
                "webhook_events",
                event_id="evt-1",
                tenant_id=tenant_id,
                session_id="sess-p",
                event="message",
                payload={},
                status="done",
                attempts=0,
                received_at=feb,
            )
            insert(
                "webhook_deliveries",
                tenant_id=tenant_id,
                url="http://x/",
                msg_id="msg_1",
                event_type="message",
                webhook_event_id=event_id,
                payload={},
                attempt=1,
                status="succeeded",
            )
            db.session.commit()
            before = _snapshot()
            indexes_before = _index_definitions()

            upgrade()
            assert _relkind("messages") == "p" and _relkind("webhook_events") == "p"
            # every index the plain tables had is on the partitioned ones, as it was (e.g. the trigram search)
            assert indexes_before <= _index_definitions()
            assert _snapshot() == before
            parts = db.session.execute(
                sa.text("SELECT c.relname, count(*) FROM messages m JOIN pg_class c ON c.oid = m.tableoid GROUP BY 1")
            ).all()
            assert sorted(parts) == [("messages_p202601", 1), ("messages_p202602", 1)]
            # this month and two ahead exist for inserts
            now = datetime.now(UTC)
            assert (
                db.session.execute(
                    sa.text("SELECT count(*) FROM pg_class WHERE relname = :n"), {"n": f"messages_p{now:%Y%m}"}
                ).scalar_one()
                == 1
            )
            # the keys of the moved rows still refuse a repeat, in another month
            duplicate = {**common, "body": "again", "idempotency_key": "key-1", "created_at": now, "updated_at": now}
            with pytest.raises(sa.exc.IntegrityError):
                insert("messages", **duplicate)
            db.session.rollback()
            new_id = insert("messages", **{**duplicate, "idempotency_key": "key-3"})
            assert new_id > max(row[0] for row in before["messages"])
            stored = db.session.execute(
                sa.text(
                    "INSERT INTO webhook_events (event_id, event, payload, status, attempts, received_at) "
                    "VALUES ('evt-1', 'message', '{}', 'pending', 0, now()) RETURNING id"
                )
            ).all()
            assert stored == []  # a repeated event id is skipped
            db.session.commit()
            after_insert = _snapshot()

            downgrade(revision=_before_partitions())
            assert _relkind("messages") == "r" and _relkind("webhook_events") == "r"
            assert _snapshot() == after_insert
            inspector = sa.inspect(db.engine)
            uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("messages")}
            assert {("session_id", "waha_message_id"), ("tenant_id", "idempotency_key")} <= uniques
            assert ("event_id",) in {
                tuple(u["column_names"]) for u in inspector.get_unique_constraints("webhook_events")
            }
            references = {
                (fk["constrained_columns"][0], fk["referred_table"])
                for name in ("chats", "messages", "webhook_deliveries")
                for fk in inspector.get_foreign_keys(name)
            }
            assert {
                ("last_message_id", "messages"),
                ("reply_to_id", "messages"),
                ("webhook_event_id", "webhook_events"),
            } <= references
            assert not {"message_idempotency_keys", "message_waha_ids", "webhook_event_keys"} & set(
                inspector.get_table_names()
            )
            upgrade()  # and up again
            assert _snapshot() == after_insert
            db.session.remove()
            db.engine.dispose()
    finally:
        if admin is not None:
            engine, name = admin
            with engine.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
