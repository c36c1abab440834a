"""The database engines of a process: the default one (transactions) and one in autocommit mode, and the check
that a pooled connection still works.

**Autocommit engine.** The API's send endpoints run their statements without a surrounding transaction, each
committing itself (see `api.auth.api_route(..., autocommit=True)`). Switching a pooled connection to autocommit
and back costs CPU on every request (SQLAlchemy resets the isolation level when the connection goes back to the
pool), so autocommit requests take their connection from a second engine whose connections are in autocommit
mode for good. `begin_autocommit()` binds the request's session to it until the session's transaction ends:
a service that commits (`session.commit()`) goes back to the default engine and real transactions from there.

**Idle ping.** `pool_pre_ping` costs a round trip on every checkout. A connection that was in use a moment
ago is as good as a ping, so a connection is pinged only when it has been idle for more than
`PING_IDLE_SECONDS` (1 s); one that fails the ping is replaced, as `pool_pre_ping` would. A database
restart while connections are busy fails the statements in flight (as it would with `pool_pre_ping`), and
SQLAlchemy then drops the whole pool.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import event, exc
from sqlalchemy.orm import Session

AUTOCOMMIT = "portal_autocommit"
_EXTENSION = "portal_autocommit_engine"
_RETURNED = "portal_returned"
PING_IDLE_SECONDS = 1.0


class PortalSession(FlaskSession):
    """Flask-SQLAlchemy's session, bound to the autocommit engine while `begin_autocommit()` asks for it."""

    def get_bind(self, mapper: Any = None, clause: Any = None, bind: Any = None, **kwargs: Any) -> Any:
        if bind is None and self.info.get(AUTOCOMMIT) is not None:
            return self.info[AUTOCOMMIT]
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


@event.listens_for(Session, "after_transaction_end")
def _end_autocommit(session: Session, transaction: Any) -> None:
    # The request's autocommit ends with the session's transaction (a commit, a rollback, the request's end).
    if transaction.parent is None:
        session.info.pop(AUTOCOMMIT, None)


def begin_autocommit(session: Session) -> bool:
    """Run `session`'s statements on the autocommit engine from here until its transaction ends (PostgreSQL).

    Does nothing inside a transaction, or on another database. True when the session is now in autocommit."""
    from flask import current_app

    engine = current_app.extensions.get(_EXTENSION)
    if engine is None or session.in_transaction():
        return autocommit_active(session)
    session.info[AUTOCOMMIT] = engine
    session.connection()  # check the connection out now: the request keeps it to the end
    return True


def autocommit_active(session: Session) -> bool:
    """True when `session` runs each statement as its own transaction on the autocommit engine."""
    return session.info.get(AUTOCOMMIT) is not None and session.in_transaction()


def _ping_when_idle(engine: sa.engine.Engine, idle_seconds: float) -> None:
    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get(_RETURNED, 0.0) <= idle_seconds:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(f"connection failed its ping: {type(error).__name__}") from error
        if alive is False:
            raise exc.DisconnectionError("connection failed its ping")


def init_app(app: Flask, db: Any) -> None:
    """Ping idle connections of the default engine, and make the autocommit engine (PostgreSQL only)."""
    idle = PING_IDLE_SECONDS
    with app.app_context():
        engine = db.engine
    _ping_when_idle(engine, idle)
    if engine.dialect.name != "postgresql":
        return
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options.pop("pool_pre_ping", None)
    autocommit = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT", **options)
    _ping_when_idle(autocommit, idle)
    app.extensions[_EXTENSION] = autocommit
