"""Fixtures of the /waha API tests: a bearer client, tokens, a second tenant, JWT settings and a JWKS server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from portal.api.auth import jwks_cache
from tests.builders import create_session, make_tenant, make_token, wait_for_status
from tests.helpers import JWT_AUDIENCE, JWT_ISSUER, JWT_SECRET, Api


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
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

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
    keys = (
        "JWT_HS256_SECRET",
        "JWT_JWKS_URL",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWT_ALGORITHMS",
        "JWT_TENANT_CLAIM",
        "JWT_ROLES_CLAIM",
    )
    saved = {k: app.config.get(k) for k in keys}
    app.config.update(
        JWT_HS256_SECRET=JWT_SECRET,
        JWT_JWKS_URL=jwks_server.url,
        JWT_ISSUER=JWT_ISSUER,
        JWT_AUDIENCE=JWT_AUDIENCE,
        JWT_ALGORITHMS=["RS256", "HS256"],
        JWT_TENANT_CLAIM="tenant",
        JWT_ROLES_CLAIM="roles",
    )
    jwks_cache.clear()
    jwks_server.keys = jwks_server.keys[:1]
    jwks_server.fetches = 0
    yield app.config
    app.config.update(saved)
    jwks_cache.clear()


@pytest.fixture
def working_session_live(api: Api, sim: Any, live_server: Any) -> dict[str, Any]:
    """A WORKING session created while the live portal runs, so WAHA's webhooks (acks, inbound) reach it."""
    created = create_session(api, "live")
    wait_for_status(api, created["id"], "SCAN_QR_CODE")
    sim.scan(created["externalSessionId"])
    return wait_for_status(api, created["id"], "WORKING")
