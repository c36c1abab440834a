"""Hot-path statements run by psycopg itself (portal.rawsql) answer as SQLAlchemy would, inside the session's
transaction, with SQLAlchemy's errors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, insert, literal, select, text, update
from sqlalchemy.exc import IntegrityError

from portal import rawsql
from portal.extensions import db
from portal.models import AuditEvent, Tenant, utcnow
from tests.builders import make_tenant


@pytest.fixture
def psycopg_session(ctx: Any) -> Any:
    assert rawsql.usable(db.session.connection())  # the suite runs on PostgreSQL with psycopg
    yield
    db.session.rollback()


def _rename(slug_to: str | None = None) -> rawsql.RawStatement:
    values: dict[Any, Any] = {Tenant.name: bindparam("name"), Tenant.updated_at: utcnow()}
    if slug_to is not None:
        values[Tenant.slug] = literal(slug_to)
    return rawsql.RawStatement(
        update(Tenant).where(Tenant.slug == bindparam("match")).values(values).returning(Tenant.id, Tenant.name)
    )


def test_a_statement_answers_the_row_sqlalchemy_answers(psycopg_session):
    tenant = make_tenant("raw-one", name="Raw One")
    make_tenant("raw-two", name="Raw Two")
    stmt = select(Tenant.id, Tenant.slug, Tenant.created_at, literal(None).label("nothing")).where(
        Tenant.slug == literal("raw-one"), Tenant.name == bindparam("name")
    )
    raw = rawsql.RawStatement(stmt)

    row = raw.one(db.session.connection(), {"name": "Raw One"})

    assert row == tuple(db.session.connection().execute(stmt, {"name": "Raw One"}).first())
    assert row[:2] == (tenant.id, "raw-one") and row[2].tzinfo is not None and row[3] is None
    assert raw.one(db.session.connection(), {"name": "nobody"}) is None


def test_json_and_time_values_are_bound_through_their_types(psycopg_session):
    tenant = make_tenant("raw-json", name="Raw JSON")
    details = {"kind": "text", "nested": {"n": 1, "list": [1, "two"]}, "text": "Olá"}
    raw = rawsql.RawStatement(
        text(
            "INSERT INTO audit_events (tenant_id, action, actor_type, details, created_at) "
            "VALUES (:tenant_id, 'raw.test', 'system', :details, :at) RETURNING id"
        ).bindparams(
            bindparam("details", type_=AuditEvent.details.type), bindparam("at", type_=AuditEvent.created_at.type)
        )
    )
    at = utcnow().replace(tzinfo=None)  # a naive time is UTC for the column type

    (event_id,) = raw.one(db.session.connection(), {"tenant_id": tenant.id, "details": details, "at": at})

    stored = db.session.get(AuditEvent, event_id)
    assert (stored.action, stored.details, stored.created_at.utcoffset().total_seconds()) == ("raw.test", details, 0)
    assert stored.created_at.replace(tzinfo=None) == at


def test_it_runs_inside_the_sessions_transaction(psycopg_session):
    make_tenant("raw-rename", name="Before")
    db.session.commit()

    assert _rename().one(db.session.connection(), {"match": "raw-rename", "name": "After"})[1] == "After"
    assert db.session.scalar(select(Tenant.name).where(Tenant.slug == "raw-rename")) == "After"
    db.session.rollback()

    assert db.session.scalar(select(Tenant.name).where(Tenant.slug == "raw-rename")) == "Before"


def test_a_unique_violation_is_sqlalchemys_integrity_error(psycopg_session):
    make_tenant("raw-taken", name="Taken")
    make_tenant("raw-other", name="Other")
    db.session.commit()

    with pytest.raises(IntegrityError):
        _rename(slug_to="raw-taken").one(db.session.connection(), {"match": "raw-other", "name": "Twin"})

    db.session.rollback()  # the session goes on as after any failed statement
    assert db.session.scalar(select(Tenant.name).where(Tenant.slug == "raw-taken")) == "Taken"


def test_statements_it_cannot_run_as_sqlalchemy_would_are_refused(psycopg_session):
    python_defaults = insert(Tenant).values(slug=bindparam("slug"), name="No defaults").returning(Tenant.id)
    expanding = select(Tenant.id).where(Tenant.slug.in_(["a", "b"]))

    for statement in (python_defaults, expanding):
        with pytest.raises(ValueError):
            rawsql.RawStatement(statement).one(db.session.connection(), {"slug": "raw-refused"})
    assert db.session.scalar(select(Tenant.id).where(Tenant.slug == "raw-refused")) is None
