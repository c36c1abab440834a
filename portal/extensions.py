"""Extensions, created unbound and bound to the app in `create_app`.

Nothing here connects at import time: the Redis connection and the job queues are built by
`init_app` from `REDIS_URL`.
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask
from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine

from portal.dbengines import PortalSession
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


db = SQLAlchemy(model_class=Base, session_options={"class_": PortalSession})
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = HTMX()
_COUNTED_ELSEWHERE = ("/waha/", "/webhooks/")


class PageLimiter(Limiter):
    """Flask-Limiter for the pages' limits (sign-in, password reset). The /waha API counts its own per-caller limit
    in one round trip (portal.api.ratelimit), and the WAHA webhooks have none: its request hook returns before
    resolving the view and its limits for those paths."""

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        from flask import request

        if in_middleware and request.path.startswith(_COUNTED_ELSEWHERE):
            return
        super()._check_request_limit(callable_name, in_middleware)


limiter = PageLimiter(key_func=_rate_limit_key, default_limits=[])


@limiter.request_filter
def _limits_of_their_own() -> bool:
    """Any limit reached on those paths some other way (a decorated view) leaves them alone too."""
    from flask import request

    return request.path.startswith(_COUNTED_ELSEWHERE)


class RedisHolder:
    """The one Redis connection of the process: real Redis from REDIS_URL, or an in-memory
    stand-in in the embedded default so the cache and pacing code has a single path."""

    def __init__(self) -> None:
        self._client: Any = None
        self.embedded = False

    def init_app(self, app: Flask) -> None:
        from portal.redisconn import DEFAULT_TIMEOUT_MS, fail_fast_client

        url = app.config.get("REDIS_URL")
        if url:
            # Short timeouts, one quick retry, then fail fast while Redis is down (portal.redisconn).
            self._client = fail_fast_client(url, int(app.config.get("REDIS_TIMEOUT") or DEFAULT_TIMEOUT_MS))
            self.embedded = False
        else:
            import fakeredis

            self._client = fakeredis.FakeRedis()
            self.embedded = True
        app.extensions["portal_redis"] = self

    def loop_client(self) -> redis.Redis:
        """A separate connection (to the current app's REDIS_URL) for RQ's worker and scheduler loops: it waits
        for Redis, it does not fail fast (RQ gives it the long read timeout of its blocking dequeue)."""
        from flask import current_app

        from portal.redisconn import DEFAULT_TIMEOUT_MS, plain_client

        url = current_app.config.get("REDIS_URL")
        if not url:
            raise RuntimeError("RQ workers need REDIS_URL")
        return plain_client(url, int(current_app.config.get("REDIS_TIMEOUT") or DEFAULT_TIMEOUT_MS))

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            raise RuntimeError("Redis is not configured: call init_app first")
        return self._client


redis_store = RedisHolder()
