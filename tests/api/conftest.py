"""Fixtures of the /waha API tests: a bearer client, tokens, a second tenant, JWT settings and a JWKS server."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from portal.api.auth import jwks_cache
from tests.factories import make_tenant, make_token

JWT_SECRET = "jwt-test-secret-0123456789-abcdefghij"
JWT_ISSUER = "https://idp.example.com/"
JWT_AUDIENCE = "waha-portal"


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
        f"{response.get_data(as_text=True)[:300]}")
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
        response = self.client.open(path, method=method, headers=self.headers(kwargs.pop("headers", None)),
                                    **kwargs)
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

    def as_(self, credential: str | None) -> "Api":
        return Api(self.client, credential)


@pytest.fixture
def token(tenant: Any) -> str:
    """A bearer token of tenant acme with every scope."""
    return make_token(tenant)


@pytest.fixture
def api(client: FlaskClient, token: str) -> Api:
    return Api(client, token)


@pytest.fixture
def other_tenant(ctx: Flask) -> Any:
    return make_tenant("globex", name="Globex")


@pytest.fixture
def other_api(client: FlaskClient, other_tenant: Any) -> Api:
    return Api(client, make_token(other_tenant))


def create_session(api: Api, name: str = "support", **fields: Any) -> dict[str, Any]:
    response = api.post("/waha/sessions", json={"sessionName": name, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def wait_for_status(api: Api, session_id: str, status: str, timeout: float = 5.0) -> dict[str, Any]:
    """Sync the session until WAHA reports `status` (the simulator moves through STARTING on a timer)."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = api.post(f"/waha/sessions/{session_id}/sync")
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        if body["status"] == status:
            return body
        time.sleep(0.05)
    raise AssertionError(f"session stayed {body.get('status')}, expected {status}")


@pytest.fixture
def session(api: Api) -> dict[str, Any]:
    """A session of acme created through the API (waiting for its QR)."""
    created = create_session(api)
    return wait_for_status(api, created["id"], "SCAN_QR_CODE")


@pytest.fixture
def working_session(api: Api, sim: Any, session: dict[str, Any]) -> dict[str, Any]:
    """A session whose phone has scanned the QR: WORKING."""
    sim.scan(session["externalSessionId"])
    return wait_for_status(api, session["id"], "WORKING")


@pytest.fixture
def other_session(other_api: Api) -> dict[str, Any]:
    """A session of the other tenant, globex."""
    return create_session(other_api, "globex-line")


# ---- JWTs -----------------------------------------------------------------------------------------------------


class JwksServer:
    """Serves a JWKS over loopback, as an identity provider does; counts fetches."""

    def __init__(self) -> None:
        self.keys: list[RSAKey] = [RSAKey.generate_key(2048, {"kid": "key-1", "use": "sig", "alg": "RS256"})]
        self.fetches = 0
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        if request.path != "/.well-known/jwks.json":
            return Response("not found", status=404)(environ, start_response)
        self.fetches += 1
        body = json.dumps(KeySet(list(self.keys)).as_dict(private=False))
        return Response(body, mimetype="application/json")(environ, start_response)

    def rotate(self, kid: str) -> RSAKey:
        key = RSAKey.generate_key(2048, {"kid": kid, "use": "sig", "alg": "RS256"})
        self.keys.append(key)
        return key


@pytest.fixture(scope="session")
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    server.thread.start()
    yield server
    server.server.shutdown()


@pytest.fixture
def jwt_settings(app: Flask, jwks_server: JwksServer) -> Iterator[dict[str, Any]]:
    """Turn on JWT sign-in for one test (HS256 and RS256), restoring the settings afterwards."""
    keys = ("JWT_HS256_SECRET", "JWT_JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_ALGORITHMS",
            "JWT_TENANT_CLAIM", "JWT_ROLES_CLAIM")
    saved = {k: app.config.get(k) for k in keys}
    app.config.update(JWT_HS256_SECRET=JWT_SECRET, JWT_JWKS_URL=jwks_server.url, JWT_ISSUER=JWT_ISSUER,
                      JWT_AUDIENCE=JWT_AUDIENCE, JWT_ALGORITHMS=["RS256", "HS256"], JWT_TENANT_CLAIM="tenant",
                      JWT_ROLES_CLAIM="roles")
    jwks_cache.clear()
    jwks_server.keys = jwks_server.keys[:1]
    jwks_server.fetches = 0
    yield app.config
    app.config.update(saved)
    jwks_cache.clear()


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for tenant acme as an operator, expiring in five minutes."""
    now = int(time.time())
    base = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": "user-42", "iat": now, "nbf": now - 5,
            "exp": now + 300, "tenant": "acme", "roles": ["operator"]}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = JWT_SECRET) -> str:
    return jwt.encode({"alg": "HS256"}, payload, OctKey.import_key(secret))


def rs256(payload: dict[str, Any], key: RSAKey) -> str:
    return jwt.encode({"alg": "RS256", "kid": key.kid}, payload, key)


@pytest.fixture
def working_session_live(api: Api, sim: Any, live_server: Any) -> dict[str, Any]:
    """A WORKING session created while the live portal runs, so WAHA's webhooks (acks, inbound) reach it."""
    created = create_session(api, "live")
    wait_for_status(api, created["id"], "SCAN_QR_CODE")
    sim.scan(created["externalSessionId"])
    return wait_for_status(api, created["id"], "WORKING")
