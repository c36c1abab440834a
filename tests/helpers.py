"""Plain helpers shared by the tests (no fixtures here; those live in the conftest files): polling, the test
password's scrypt remembered, CSRF tokens and forms as a browser sends them, closed ports, a loopback HTTP server,
the /waha API client that checks answers against the OpenAPI document, JWTs, quiet simulator webhooks and the WAHA
contract files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ROOT = Path(__file__).resolve().parent.parent
SIM_API_KEY = "sim-test-key"


# ---- waiting ---------------------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll until predicate() is truthy (webhooks, workers, the simulator); return its value or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


# ---- password hashing --------------------------------------------------------------------------------------------


def remember_scrypt_of(password: str) -> None:
    """Answer repeated scrypt computations of `password` from memory, for this process.

    Signing the test user in costs a scrypt of the suite's test password (~0.1 s of CPU by design) in almost
    every page test. scrypt is a pure function of its arguments, so a remembered answer is the answer; only this
    one password is remembered, so a wrong guess, a new password or a timing comparison costs what it costs in
    production."""
    real = hashlib.scrypt
    if getattr(real, "remembers", None) == password:
        return
    wanted = password.encode()
    answers: dict[tuple, bytes] = {}

    def scrypt(secret: bytes, **params: Any) -> bytes:
        if secret != wanted:
            return real(secret, **params)
        key = tuple(sorted(params.items()))
        if key not in answers:
            answers[key] = real(secret, **params)
        return answers[key]

    scrypt.remembers = password  # type: ignore[attr-defined]
    hashlib.scrypt = scrypt  # type: ignore[assignment]


# ---- pages and forms -------------------------------------------------------------------------------------------


def csrf_token(client: FlaskClient, path: str = "/") -> str:
    """The CSRF token of a page, as a browser would read it."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(r'"X-CSRFToken": "([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None, *, page: str = "/", **kwargs: Any) -> Any:
    """POST a form with the CSRF token read from `page`, as the browser would send it."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, page)}, **kwargs)


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def find(pattern: str, body: str) -> str:
    """The first group of `pattern` in `body` (fails the test when absent)."""
    match = re.search(pattern, body)
    assert match, f"{pattern!r} not found"
    return match.group(1)


# ---- network ---------------------------------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (bound once by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unreachable_redis() -> Any:
    """A Redis client for a loopback port that refuses connections, built like the app's own client (short
    timeouts, one quick retry, a circuit breaker: portal.redisconn), so an outage costs what it costs the app."""
    from portal.redisconn import fail_fast_client

    return fail_fast_client(f"redis://127.0.0.1:{closed_port()}/0")


class LoopbackServer:
    """Serves `answer(request) -> Response` on 127.0.0.1 (TLS with `ssl_context`); `requests` lists what came in."""

    def __init__(self, answer: Callable[[Request], Response], ssl_context: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True, ssl_context=ssl_context)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "host": request.host,
                    "headers": dict(request.headers),
                    "body": request.get_data(),
                }
            )
        return self.answer(request)(environ, start_response)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def quiet_waha_webhooks(app: Any) -> Iterator[None]:
    """Point PUBLIC_BASE_URL (the webhook URL new sessions give WAHA) at a closed port for the block."""
    previous = app.config["PUBLIC_BASE_URL"]
    app.config["PUBLIC_BASE_URL"] = "http://127.0.0.1:9"
    try:
        yield
    finally:
        app.config["PUBLIC_BASE_URL"] = previous


# ---- the /waha API -----------------------------------------------------------------------------------------------

_DOCUMENT: dict[str, Any] = {}


def openapi_document() -> dict[str, Any]:
    """The served OpenAPI document, built once per test run."""
    if not _DOCUMENT:
        from portal.api.openapi import build_document

        _DOCUMENT.update(build_document())
    return _DOCUMENT


def check_against_openapi(app: Flask, method: str, path: str, response: Any) -> None:
    """Fail unless the answer's status, content type and JSON body are what the OpenAPI document promises."""
    from jsonschema import Draft202012Validator

    from portal.api.openapi import route_for

    endpoint, _ = app.url_map.bind("localhost").match(path.split("?", 1)[0], method=method)
    route = route_for(endpoint)
    assert route is not None, f"{endpoint} is missing from the route table"
    operation = openapi_document()["paths"][route.path][method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, (
        f"{method} {route.path} answered {response.status_code}, which the OpenAPI document does not list: "
        f"{response.get_data(as_text=True)[:300]}"
    )
    content = documented.get("content")
    if content is None:
        assert response.get_data() == b"", f"{method} {route.path} {response.status_code} should have no body"
        return
    ranges = {m for m in content if m == "*/*" or (m.endswith("/*") and response.mimetype.startswith(m[:-1]))}
    assert response.mimetype in content or ranges, f"{method} {route.path}: {response.mimetype} not in {list(content)}"
    if response.mimetype == "application/json":
        schema = dict(content["application/json"]["schema"], components=openapi_document()["components"])
        Draft202012Validator(schema).validate(response.get_json())


class Api:
    """A test client that sends a bearer credential and JSON bodies, and checks every answer against the
    OpenAPI document."""

    def __init__(self, client: FlaskClient, credential: str | None) -> None:
        self.client = client
        self.credential = credential

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.credential}"} if self.credential else {}
        headers.update(extra or {})
        return headers

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.open(path, method=method, headers=self.headers(kwargs.pop("headers", None)), **kwargs)
        check_against_openapi(self.client.application, method, path, response)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        if json is not None:
            kwargs["json"] = json
        return self.call("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.call("DELETE", path, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        if json is not None:
            kwargs["json"] = json
        return self.call("PATCH", path, **kwargs)

    def as_(self, credential: str | None) -> Api:
        return Api(self.client, credential)


# ---- JWTs --------------------------------------------------------------------------------------------------------

JWT_SECRET = "jwt-test-secret-0123456789-abcdefghij"
JWT_ISSUER = "https://idp.example.com/"
JWT_AUDIENCE = "waha-portal"


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for tenant acme as an operator, expiring in five minutes."""
    now = int(time.time())
    base = {
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "sub": "user-42",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "tenant": "acme",
        "roles": ["operator"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = JWT_SECRET) -> str:
    return jwt.encode({"alg": "HS256"}, payload, OctKey.import_key(secret))


def rs256(payload: dict[str, Any], key: RSAKey) -> str:
    return jwt.encode({"alg": "RS256", "kid": key.kid}, payload, key)


# ---- WAHA contract files (the simulator tests) -------------------------------------------------------------------

LOCAL_FIXTURES = ROOT / "tests" / "fixtures" / "waha"
SHARED = Path(os.environ.get("WAHA_SHARED_DIR", ROOT.parent / "shared" / "waha"))


def fixture_path(name: str) -> Path:
    """A contract file: the committed copy first, the shared folder otherwise."""
    local = LOCAL_FIXTURES / name
    if local.exists():
        return local
    if name == "openapi.json":
        return SHARED / "openapi.json"
    return SHARED / "fixtures" / name


def load_fixture(name: str) -> Any:
    return json.loads(fixture_path(name).read_text(encoding="utf-8"))


def hook(url: str, events: Any = ("*",), **extra: Any) -> dict:
    """A session webhook config entry."""
    return {"url": url, "events": list(events), **extra}


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port on loopback that accepts every connection and never answers (a hung server); yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


# Tests write messages and events dated in the past (fixed dates from 2025 on, or days back from now). In production
# rows are stamped with the current time, whose partition the scheduler keeps ahead; on PostgreSQL the test schema
# also gets every monthly partition from the oldest such date on (migration 0011 creates only this month on).
TESTS_OLDEST_ROW_DAYS = 400


def ensure_test_partitions() -> list[str]:
    """Create the monthly partitions the tests' back-dated rows fall into (PostgreSQL; nothing on SQLite)."""
    from datetime import UTC, datetime, timedelta

    from portal.models import utcnow
    from portal.services import partitions

    now = utcnow()
    oldest = min(datetime(2025, 1, 1, tzinfo=UTC), now - timedelta(days=TESTS_OLDEST_ROW_DAYS))
    start = partitions.month_start(oldest)
    months = (now.year - start.year) * 12 + now.month - start.month
    return partitions.ensure(now=start, ahead=months + partitions.AHEAD_MONTHS)
