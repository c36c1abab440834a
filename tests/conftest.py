"""Shared fixtures: the app on PostgreSQL + Redis of this machine, a clean database per test, the WAHA
simulator over loopback (and a second one), a live portal server, a real RQ worker in burst mode, and Playwright's
Chromium.

Only this top-level conftest overrides Playwright's `base_url` and launch arguments.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from portal import create_app
from portal.config import environ_for_tests
from portal.extensions import db
from tests.builders import PASSWORD, make_tenant, make_user, recovery_code
from tests.helpers import ROOT, SIM_API_KEY, csrf_token, ensure_test_partitions, remember_scrypt_of

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1"... under pytest-xdist, else ""


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker gets a database and a Redis database of its own, derived from
    TEST_DATABASE_URL / TEST_REDIS_URL, so that workers never see each other's rows, jobs or caches."""
    remember_scrypt_of(PASSWORD)
    if not WORKER:
        return
    index = int(WORKER.removeprefix("gw"))
    url = make_url(os.environ.get("TEST_DATABASE_URL", environ_for_tests()["DATABASE_URL"]))
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "test.db")
        url = url.set(database=str(path.with_name(f"{path.stem}-{WORKER}{path.suffix}")))
    else:
        url = url.set(database=f"{url.database}_{WORKER}")
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).first():
                conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
        admin.dispose()
    os.environ["TEST_DATABASE_URL"] = url.render_as_string(hide_password=False)
    redis_url = urlsplit(os.environ.get("TEST_REDIS_URL", environ_for_tests()["REDIS_URL"]))
    base = int(redis_url.path.strip("/") or 0)
    os.environ["TEST_REDIS_URL"] = redis_url._replace(path=f"/{(base - index) % 16}").geturl()


def _reset_rate_limits() -> None:
    """Every test starts with no request counted. The limiter is one object for the process: an app another test
    built may have bound it to another Redis database, and a test that took Redis away leaves it counting in its
    in-memory fallback until its next health check. Clear whichever storage it counts in."""
    from portal.extensions import limiter

    try:
        limiter.reset()
    except Exception:
        pass
    fallback = getattr(limiter, "_fallback_storage", None)
    if fallback is not None:
        fallback.reset()
    limiter._storage_dead = False
    # The API's own limit (api.ratelimit) counts in this process's memory while Redis is away, and the token cache
    # holds the tokens of earlier tests: every test starts without either.
    from portal.api import ratelimit
    from portal.services import token_cache

    ratelimit.reset_memory()
    token_cache.clear()
    from portal.services import quotas

    quotas.forget_plans()  # plans are cached per process; ids come again in the next test's database


def _reset_redis_pauses() -> None:
    """Every test starts with Redis not paused. Shared counters and drain signals skip Redis for a while after it
    failed or answered too slowly (portal.redisconn.PauseAfterFailure), one pause per process: a slow moment in an
    earlier test on a busy machine would otherwise leave this one's counts uncounted."""
    from portal.metrics import shared
    from portal.services.events import signal

    shared._pause.reset()
    signal._redis_pause.reset()


def _drop_pending_metrics() -> None:
    """Counts an earlier test left in this process's metrics buffer (flushed within a second) are not this
    test's: drop them before Redis is emptied."""
    from portal.metrics import shared

    with shared._buffer.lock:
        shared._buffer.pending.clear()


def _reset_schema(app: Flask) -> None:
    """Drop everything and build the schema with the real migration."""
    from flask_migrate import upgrade

    with app.app_context():
        url = db.engine.url
        if url.get_backend_name() == "sqlite":
            db.engine.dispose()
            if url.database and os.path.exists(url.database):
                os.remove(url.database)
        else:
            with db.engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE"))
                conn.execute(sa.text("CREATE SCHEMA public"))
        upgrade()
        ensure_test_partitions()


@pytest.fixture(scope="session")
def _environ() -> dict[str, str]:
    env = environ_for_tests(
        WAHA_API_KEY=SIM_API_KEY,
        WAHA_TIMEOUT="3000",
        WAHA_RETRY_ATTEMPTS="1",
        WAHA_WEBHOOK_TIMEOUT="2000",
        WAHA_WEBHOOK_RETRY_ATTEMPTS="2",
        MEDIA_ROOT=str(ROOT / "instance" / f"test-media{WORKER}"),
    )
    return env


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """moto's S3 server on a free port of this process (so one per pytest-xdist worker); it failing to start fails
    every test that needs it."""
    from tests.s3server import MotoServer

    server = MotoServer.start()
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def media_backend(request: pytest.FixtureRequest, app: Flask) -> Iterator[str]:
    """Runs a test once on each media backend: the local folder, then a bucket on moto's S3 server (under a
    prefix of the test's own). Yields the backend's name."""
    import uuid

    from tests.s3server import MEDIA_SETTINGS

    saved = {name: app.config.get(name) for name in MEDIA_SETTINGS}
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        app.config.update(server.settings(f"test-{uuid.uuid4().hex[:12]}"))
    try:
        yield request.param
    finally:
        app.config.update(saved)


@pytest.fixture(scope="session")
def sim() -> Iterator[Any]:
    """The WAHA simulator on a loopback port, shared by the session and reset before each test using it."""
    from wahasim.testing import SimServer

    server = SimServer(api_key=SIM_API_KEY, engine="GOWS", ack_delay=0.05, starting_delay=0.02)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def second_sim() -> Iterator[Any]:
    """Another WAHA simulator on its own port, with its own API key (a second server of the fleet)."""
    from wahasim.testing import SimServer

    server = SimServer(api_key="sim-two-key", engine="GOWS", ack_delay=0.05)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def app(_environ: dict[str, str], sim: Any) -> Iterator[Flask]:
    env = dict(_environ, WAHA_BASE_URL=sim.url)
    application = create_app(env)
    _reset_schema(application)
    yield application


class _Seed:
    """The rows every test starts with (the default WAHA server and its audit event), written once per session.

    After seeding, `tables` maps each table holding seed rows to its highest seed id, `fingerprint` holds an md5 of
    those rows (so a test that changed or deleted one is noticed) and `sequences` the value of each sequence."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Nothing seeded (yet, or any more): the next test seeds again."""
        self.done = False
        self.tables: dict[str, int] = {}
        self.fingerprint: dict[str, str | None] = {}
        self.sequences: dict[str, int] = {}


_seed = _Seed()


def _fingerprint_sql(table: str, max_id: int) -> str:
    return f"SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM \"{table}\" t WHERE t.id <= {max_id}"


def _seed_default_server(application: Flask) -> None:
    """Seed the default server (as production does on first start) and remember what the seed wrote."""
    from portal.services.servers import ensure_default_server

    with application.app_context():
        ensure_default_server()
        db.session.remove()
        if db.engine.url.get_backend_name() == "sqlite":
            return  # the SQLite smoke pass empties every table after each test and seeds again
        tables = [t.name for t in db.metadata.sorted_tables]
        with db.engine.connect() as conn:
            for name in _tables_with_rows(conn, tables):
                if "id" in db.metadata.tables[name].c:
                    max_id = conn.execute(sa.text(f'SELECT max(id) FROM "{name}"')).scalar_one()
                    _seed.tables[name] = max_id
                    _seed.fingerprint[name] = conn.execute(sa.text(_fingerprint_sql(name, max_id))).scalar()
            _seed.sequences = _moved_sequences(conn)
    _seed.done = True


def _tables_with_rows(conn: sa.Connection, tables: list[str]) -> set[str]:
    """The tables holding at least one row, in one round trip."""
    query = " UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables)
    return set(conn.execute(sa.text(query)).scalars())


def _moved_sequences(conn: sa.Connection) -> dict[str, int]:
    """Each sequence that has handed out a value since it was last restarted, with that value."""
    rows = conn.execute(
        sa.text(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL"
        )
    )
    return {str(row[0]): int(row[1]) for row in rows}


def _dirty(conn: sa.Connection, tables: list[str]) -> tuple[list[str], bool, dict[str, int]]:
    """What the test wrote: tables to empty (child tables first), whether a seed row was changed, and the
    sequences that moved past their seeded value."""
    parts = []
    for t in tables:
        if t in _seed.tables:
            parts.append(f"SELECT '{t}', 'extra' WHERE EXISTS (SELECT 1 FROM \"{t}\" WHERE id > {_seed.tables[t]})")
            parts.append(
                f"SELECT '{t}', 'changed' WHERE ({_fingerprint_sql(t, _seed.tables[t])}) "
                f"IS DISTINCT FROM {_quote(_seed.fingerprint[t])}"
            )
        else:
            parts.append(f"SELECT '{t}', 'rows' WHERE EXISTS (SELECT 1 FROM \"{t}\")")
    found = conn.execute(sa.text(" UNION ALL ".join(parts))).all()
    changed = any(kind == "changed" for _, kind in found)
    names = {name for name, _ in found}
    sequences = {name: value for name, value in _moved_sequences(conn).items() if _seed.sequences.get(name) != value}
    return [t for t in tables if t in names], changed, sequences


def _quote(value: str | None) -> str:
    return "NULL" if value is None else f"'{value}'"


def _empty_postgres(tables: list[str]) -> None:
    """Delete what the test wrote, keep the seed rows, put the moved sequences back, in one round trip after the
    look; a late webhook from the simulator may be writing meanwhile, so a deadlock is retried."""
    for attempt in range(5):
        try:
            with db.engine.begin() as conn:
                dirty, changed, sequences = _dirty(conn, tables)
                if changed:  # a seed row was changed or deleted: empty everything, seed again in the next test
                    _seed.forget()
                    dirty = tables
                    sequences = _moved_sequences(conn)
                if not (dirty or sequences):
                    return
                # a connection left in a transaction by a test would make the cleanup wait forever
                script = ["SET LOCAL lock_timeout = '15s'"]
                # Sequences before rows: ALTER SEQUENCE waits for the inserts in flight and holds new ones off
                # until the commit. Taken after the deletes, it deadlocks with a late webhook's insert that has
                # drawn its id and waits for the session row being deleted (PostgreSQL breaks that after its
                # deadlock_timeout, 1 s).
                for name in sequences:
                    seeded = _seed.sequences.get(name)
                    script.append(
                        f'ALTER SEQUENCE "{name}" RESTART'
                        if seeded is None
                        else f"SELECT setval('\"{name}\"', {seeded})"
                    )
                for name in dirty:
                    keep = _seed.tables.get(name)
                    script.append(f'DELETE FROM "{name}"' + (f" WHERE id > {keep}" if keep else ""))
                conn.exec_driver_sql("; ".join(script))
            return
        except sa.exc.OperationalError as exc:
            if "deadlock" not in str(exc) or attempt == 4:
                raise


@functools.cache
def _redis(url: str) -> redis.Redis:
    """One plain client per Redis URL for the cleanup (not the app's fail-fast one, which a test may swap)."""
    return redis.Redis.from_url(url)


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with the seeded default server and nothing else in the database, an empty Redis
    database, a fresh simulator and no mail sent. Only the tables a test wrote are emptied afterwards."""
    if "app" not in request.fixturenames:
        yield
        return
    from portal.mail import outbox

    application: Flask = request.getfixturevalue("app")
    sim = request.getfixturevalue("sim")
    sim.reset()
    outbox.clear()
    _drop_pending_metrics()
    _redis(application.config["REDIS_URL"]).flushdb()
    _reset_rate_limits()
    _reset_redis_pauses()
    if not _seed.done:
        _seed_default_server(application)
    yield
    with application.app_context():
        db.session.remove()
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        if db.engine.url.get_backend_name() == "sqlite":
            with db.engine.begin() as conn:
                for name in tables:
                    conn.execute(sa.text(f'DELETE FROM "{name}"'))
            _seed.forget()
        else:
            _empty_postgres(tables)
            ensure_test_partitions()  # retention may have dropped a past month later tests write into (cheap if not)


@pytest.fixture
def ctx(app: Flask) -> Iterator[Flask]:
    """An app context for service-level tests."""
    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def tenant(ctx: Flask) -> Any:
    return make_tenant("acme", name="Acme")


@pytest.fixture
def owner(tenant: Any) -> Any:
    return make_user(tenant, "owner", email="owner@acme.example.com")


@pytest.fixture
def login(app: Flask) -> Callable[..., FlaskClient]:
    """Sign a user in through the real form (CSRF token included) and return the client."""

    def do_login(user: Any, client: FlaskClient | None = None, password: str = PASSWORD) -> FlaskClient:
        client = client or app.test_client()
        token = csrf_token(client, "/login")
        response = client.post("/login", data={"email": user.email, "password": password, "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)
        if response.headers["Location"] == "/login/two-factor":
            with app.app_context():
                code = recovery_code(user)
            token = csrf_token(client, "/login/two-factor")
            response = client.post("/login/two-factor", data={"code": code, "csrf_token": token})
            assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return do_login


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="session")
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The real portal over loopback; WAHA (the simulator) posts its webhooks here."""
    server = LiveServer(app)
    app.config["PUBLIC_BASE_URL"] = server.url
    server.start()
    yield server
    server.stop()


@pytest.fixture
def run_jobs(app: Flask) -> Callable[[], int]:
    """Run every queued job with a real RQ worker in burst mode; returns how many ran."""
    from rq import Queue

    from portal.extensions import redis_store
    from portal.jobs import QUEUES, worker_class

    class BurstWorker(worker_class(simple=True)):  # type: ignore[misc]  # the class `flask worker` runs jobs with
        """The portal's worker without its command channel: nothing sends commands to a worker that lives
        for one call, and closing the channel's listener thread can wait its full second (RQ joins it with
        timeout=1 while it may be blocked in a 60 s read)."""

        def subscribe(self) -> None:
            pass

    def burst() -> int:
        with app.app_context():
            queues = [Queue(name, connection=redis_store.client) for name in QUEUES]

            def done() -> int:
                return sum(q.finished_job_registry.count + q.failed_job_registry.count for q in queues)

            before = done()
            BurstWorker(queues, connection=redis_store.client).work(burst=True, with_scheduler=False)
            return done() - before

    return burst


# Playwright: Debian's Chromium, and the live portal as base URL.
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def base_url(live_server: LiveServer) -> str:
    return live_server.url


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A test-local hosts table in front of the system resolver, for tests of what the portal does with DNS
    answers: name -> addresses (or a function giving the addresses of each lookup, to change the answer over
    time); names not in the table resolve as usual."""
    import socket

    table: dict[str, Any] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not isinstance(name, str) or name not in table:
            return real(host, port, *args, **kwargs)
        entry = table[name]
        addresses = entry() if callable(entry) else entry
        port = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (--dist loadgroup) the browser tests stay together on one worker, beside their
    package's RQ worker process."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.xdist_group("browser"))
