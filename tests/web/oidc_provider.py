"""A tiny OpenID Connect provider over loopback for the sign-in tests: discovery, token endpoint with
client authentication and PKCE, and a JWKS with an RS256 key made with joserfc.

The browser leg (the provider's login page) is skipped: a test reads the authorization request the portal
redirected to, decides who signs in with `issue_code`, and calls the portal's callback itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

CLIENT_ID = "portal-client"
CLIENT_SECRET = "portal-client-secret"


class FakeOidcProvider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig", "alg": "RS256"})
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests: list[dict[str, str]] = []
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeOidcProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def issue_code(
        self, authorize_url: str, claims: dict[str, Any], *, signing_key: RSAKey | None = None, nonce: str | None = None
    ) -> str:
        """Approve the authorization request at `authorize_url` for a person with `claims`; returns the code."""
        params = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        assert params["client_id"] == CLIENT_ID and params["response_type"] == "code"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "params": params,
            "claims": claims,
            "key": signing_key or self.key,
            "nonce": params.get("nonce") if nonce is None else nonce,
        }
        return code

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/.well-known/openid-configuration":
            response = self._json(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "jwks_uri": f"{self.issuer}/jwks",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )
        elif request.path == "/jwks":
            response = self._json({"keys": [self.key.as_dict(private=False)]})
        elif request.path == "/token" and request.method == "POST":
            response = self._token(request)
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)

    def _token(self, request: Request) -> Response:
        form = request.form.to_dict()
        self.token_requests.append(form)
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (CLIENT_ID, CLIENT_SECRET):
            return self._json({"error": "invalid_client"}, 401)
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("redirect_uri") != grant["params"]["redirect_uri"]:
            return self._json({"error": "invalid_grant"}, 400)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant["params"].get("code_challenge"):
            return self._json({"error": "invalid_grant", "error_description": "PKCE check failed"}, 400)
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 300, **grant["claims"]}
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        id_token = jwt.encode({"alg": "RS256", "kid": "key-1"}, claims, grant["key"])
        return self._json(
            {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
        )

    @staticmethod
    def _json(body: dict[str, Any], status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json")
