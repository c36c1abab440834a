"""Extensions, created unbound and bound to the app in `create_app`.

Nothing here connects at import time: the Redis connection and the job queues are built by
`init_app` from `REDIS_URL`.
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from portal.models.base import Base


def _rate_limit_key() -> str:
    # The API keys its limits by token (set on g by the bearer check), pages by client address.
    from flask import g, request

    principal = getattr(g, "principal", None)
    if principal is not None:
        return f"principal:{principal.key}"
    return f"ip:{request.remote_addr}"


@event.listens_for(Engine, "connect")
def _sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite ignores foreign keys (and so ON DELETE CASCADE) unless each connection turns them on."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = HTMX()
limiter = Limiter(key_func=_rate_limit_key, default_limits=[])


class RedisHolder:
    """The one Redis connection of the process: real Redis from REDIS_URL, or an in-memory
    stand-in in the embedded default so the cache and pacing code has a single path."""

    def __init__(self) -> None:
        self._client: Any = None
        self.embedded = False

    def init_app(self, app: Flask) -> None:
        url = app.config.get("REDIS_URL")
        if url:
            self._client = redis.Redis.from_url(
                url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
            )
            self.embedded = False
        else:
            import fakeredis

            self._client = fakeredis.FakeRedis()
            self.embedded = True
        app.extensions["portal_redis"] = self

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            raise RuntimeError("Redis is not configured: call init_app first")
        return self._client


redis_store = RedisHolder()
