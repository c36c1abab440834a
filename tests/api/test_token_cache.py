"""The per-process token cache: a known token costs no database read, and a change to a token or its tenant is
obeyed at once by every process (another app process started here, served over loopback)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import event

from portal.extensions import db, redis_store
from portal.models import ApiToken
from portal.services import tenant_admin, token_cache, tokens
from tests.builders import TEST_ACTOR, make_token
from tests.helpers import Api, wait_for

ROOT = Path(__file__).resolve().parents[2]

SERVER = textwrap.dedent("""
    import logging, os, sys
    from werkzeug.serving import make_server
    from portal import create_app
    app = create_app({k: v for k, v in os.environ.items()})
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True)
    print("ready", flush=True)
    server.serve_forever()
""")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def other_process(app: Any, _environ: dict[str, str]) -> Iterator[str]:
    """A second app process on its own port, with the test's settings (database, Redis, WAHA)."""
    port = _free_port()
    env = {**os.environ, **_environ, "WAHA_BASE_URL": app.config["WAHA_BASE_URL"]}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _get(base: str, token: str) -> int:
    return requests.get(f"{base}/waha/sessions", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


def test_a_known_token_is_not_read_from_the_database_again(api: Api, app: Any) -> None:
    assert api.get("/waha/sessions").status_code == 200  # read once, then kept
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        engines = [db.engine, app.extensions["portal_autocommit_engine"]]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        assert api.get("/waha/sessions").status_code == 200
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)

    assert statements, "the endpoint itself reads the sessions"
    assert not [s for s in statements if "api_tokens" in s]


def test_a_revoked_token_is_refused_at_once_by_another_process(
    ctx: Any, tenant: Any, other_process: str, api: Api
) -> None:
    token = make_token(tenant, name="integrator")
    assert _get(other_process, token) == 200
    assert _get(other_process, token) == 200  # now cached over there
    row = db.session.scalars(db.select(ApiToken).where(ApiToken.name == "integrator")).one()

    tokens.revoke_token(tenant, row.id, TEST_ACTOR)

    assert _get(other_process, token) == 401
    assert api.as_(token).get("/waha/sessions").status_code == 401


def test_a_deactivated_tenant_is_refused_at_once_by_another_process(ctx: Any, tenant: Any, other_process: str) -> None:
    token = make_token(tenant)
    assert _get(other_process, token) == 200
    assert _get(other_process, token) == 200

    tenant_admin.set_tenant_active(tenant.id, False, TEST_ACTOR)

    assert _get(other_process, token) == 401


def test_a_token_deleted_with_a_plain_statement_is_refused_at_once(ctx: Any, tenant: Any, api: Api) -> None:
    token = make_token(tenant, name="doomed")
    assert api.as_(token).get("/waha/sessions").status_code == 200

    db.session.execute(db.delete(ApiToken).where(ApiToken.name == "doomed"))
    db.session.commit()

    assert api.as_(token).get("/waha/sessions").status_code == 401


def test_a_change_announced_by_another_process_empties_this_processes_cache(api: Api, app: Any) -> None:
    assert api.get("/waha/sessions").status_code == 200
    assert token_cache.size() == 1
    other = redis.Redis.from_url(app.config["REDIS_URL"])

    def pushed() -> bool:
        other.publish(token_cache.CHANNEL, b"*")  # the listener may still be subscribing: say it until heard
        return token_cache.size() == 0

    assert wait_for(pushed, timeout=5, interval=0.1)


def test_the_cache_is_not_trusted_while_redis_cannot_vouch_for_it(api: Api, ctx: Any, monkeypatch: Any) -> None:
    assert api.get("/waha/sessions").status_code == 200  # cached
    # Revoked behind the cache's back (plain SQL: no announcement); then Redis becomes unreachable.
    db.session.execute(db.text("UPDATE api_tokens SET revoked_at = now()"))
    db.session.commit()
    monkeypatch.setattr(redis_store, "_client", redis.Redis(host="127.0.0.1", port=_free_port(), socket_timeout=0.2))

    assert api.get("/waha/sessions").status_code == 401  # the epoch cannot be read: the token is read again


def test_rate_limit_headers_count_down_from_the_calls_own_count(api: Api, monkeypatch: Any, app: Any) -> None:
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "5 per minute")

    answers = [api.get("/waha/sessions") for _ in range(6)]

    assert [a.headers["X-RateLimit-Limit"] for a in answers[:5]] == ["5"] * 5
    assert [int(a.headers["X-RateLimit-Remaining"]) for a in answers] == [4, 3, 2, 1, 0, 0]
    assert answers[5].status_code == 429
    reset = int(answers[0].headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 61
