"""The JWKS fetch goes through the hardened outbound client: no redirects, a bounded answer, no proxy variables."""

from __future__ import annotations

import json
from typing import Any

from joserfc.jwk import KeySet
from werkzeug.wrappers import Response

from portal.api.auth import JWKS_MAX_BYTES, jwks_cache
from tests.helpers import Api, LoopbackServer, claims, rs256


def _use(app: Any, url: str) -> None:
    app.config["JWT_JWKS_URL"] = url
    jwks_cache.clear()


def test_jwks_behind_a_redirect_is_not_followed(app, api: Api, jwt_settings: Any, jwks_server: Any) -> None:
    def redirect(request: Any) -> Response:
        return Response("", status=302, headers={"Location": jwks_server.url})

    with LoopbackServer(redirect) as server:
        _use(app, f"http://127.0.0.1:{server.port}/jwks")
        response = api.as_(rs256(claims(), jwks_server.keys[0])).get("/waha/sessions")
    assert response.status_code == 401
    assert jwks_server.fetches == 0 and len(server.requests) == 1


def test_oversized_jwks_is_refused(app, api: Api, jwt_settings: Any, jwks_server: Any) -> None:
    body = KeySet(list(jwks_server.keys)).as_dict(private=False)
    body["padding"] = "x" * JWKS_MAX_BYTES

    with LoopbackServer(lambda request: Response(json.dumps(body), mimetype="application/json")) as server:
        _use(app, f"http://127.0.0.1:{server.port}/jwks")
        response = api.as_(rs256(claims(), jwks_server.keys[0])).get("/waha/sessions")
    assert response.status_code == 401


def test_jwks_fetch_ignores_proxy_variables(
    app, api: Api, jwt_settings: Any, jwks_server: Any, monkeypatch: Any
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    response = api.as_(rs256(claims(), jwks_server.keys[0])).get("/waha/sessions")
    assert response.status_code == 200 and jwks_server.fetches == 1
