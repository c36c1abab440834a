"""Fixed statements of a hot path, compiled once by SQLAlchemy and run by psycopg itself.

SQLAlchemy spends about a tenth of a millisecond of CPU on every execution that a statement built once does not
need: the compiled-cache lookup, an execution context, every parameter bound through its type, the result
wrapped in Row objects. `RawStatement` keeps what SQLAlchemy compiled (the SQL text for the connection's dialect,
literal values, the few bind processors that convert a value, such as JSON) and runs it on the DBAPI connection
under the session's own connection, so it takes part in the session's transaction, or commits by itself on the
autocommit engine (`portal.dbengines`). Errors come out as SQLAlchemy's (`IntegrityError` and the rest), and a
connection lost midway is invalidated as SQLAlchemy would. SQLAlchemy's engine events (before_cursor_execute and
the like) do not see these statements.

Only for PostgreSQL on psycopg (`usable`); `first` and `rows` run a statement this way where they can, and
through SQLAlchemy elsewhere (SQLite).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect


def usable(connection: Connection) -> bool:
    """True when `connection` runs on psycopg (PostgreSQL), where a RawStatement can run."""
    return connection.dialect.driver == "psycopg"


class RawStatement:
    """A Core statement (or `text()`), compiled on first use for the dialect it runs on; `one()` runs it."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: tuple[str, dict[str, Any], tuple[tuple[str, Callable[[Any], Any]], ...]] | None = None

    def _compile(self, dialect: Dialect) -> tuple[str, dict[str, Any], tuple[tuple[str, Callable[[Any], Any]], ...]]:
        compiled = self.statement.compile(dialect=dialect)
        if compiled.insert_prefetch or compiled.update_prefetch:
            # SQLAlchemy computes these defaults while it executes; run here, the columns would get NULL
            raise ValueError("a raw statement must give every column with a Python-side default its value")
        if any(bind.expanding for bind in compiled.binds.values()):
            # SQLAlchemy renders "IN (...)" for the list at execution: give the list's items as literals instead
            raise ValueError("a raw statement cannot hold an expanding IN parameter")
        defaults: dict[str, Any] = {}
        processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            if not bind.required and bind.callable is None:
                defaults[name] = bind.value  # a literal of the statement (None included)
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        self._compiled = (compiled.string, defaults, tuple(processors.items()))
        return self._compiled

    def one(self, connection: Connection, params: dict[str, Any]) -> tuple | None:
        """Run the statement on `connection`'s DBAPI connection with `params`; its first row as a tuple, or None."""
        cursor = self._execute(connection, params)
        return cursor.fetchone() if cursor.description is not None else None

    def all(self, connection: Connection, params: dict[str, Any]) -> list[Any]:
        """Run the statement; all its rows, as named tuples (`row.id`, `row.name`)."""
        return self._execute(connection, params, named=True).fetchall()

    def _execute(self, connection: Connection, params: dict[str, Any], named: bool = False) -> Any:
        sql, defaults, processors = self._compiled or self._compile(connection.dialect)
        values = {**defaults, **params} if defaults else dict(params)
        for name, processor in processors:
            if name in values:
                values[name] = processor(values[name])
        driver = connection.connection.driver_connection
        try:
            cursor = driver.cursor(row_factory=namedtuple_row) if named else driver.cursor()  # type: ignore[union-attr]
            return cursor.execute(sql, values, prepare=True)
        except psycopg.Error as error:
            if connection.dialect.is_disconnect(error, driver, None):  # type: ignore[arg-type]
                connection.invalidate(error)
            raise exc.DBAPIError.instance(sql, values, error, psycopg.Error, dialect=connection.dialect) from error


def first(raw: RawStatement, connection: Connection, params: dict[str, Any]) -> Any:
    """The first row of `raw` on `connection` (by psycopg itself where it can), or None."""
    if usable(connection):
        return raw.one(connection, params)
    return connection.execute(raw.statement, params).first()


def rows(raw: RawStatement, connection: Connection, params: dict[str, Any]) -> list[Any]:
    """Every row of `raw` on `connection` (by psycopg itself where it can), each with its columns as attributes."""
    if usable(connection):
        return raw.all(connection, params)
    return list(connection.execute(raw.statement, params))
