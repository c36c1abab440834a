"""Bearer authentication of the /waha API: portal API tokens or JWTs from the integrator's identity provider.

Every endpoint declares the permission it needs with `@api_route(permission)` (or `@public` for the docs).
The decorator resolves the caller, applies the per-caller rate limit, checks the permission and only then runs
the view. A token seen in the last seconds comes from the per-process token cache (services.token_cache), and
the rate limit, the failed-authentication throttle and the cache's epoch cost one Redis round trip together
(api.ratelimit). Each refusal is written to the audit log (failed authentications as one row per address and minute,
with a count); an address with too many failed authentications is refused before its credential is checked.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, current_app, g, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from portal.api import bp, ratelimit
from portal.dbengines import begin_autocommit
from portal.extensions import db
from portal.net import http as outbound
from portal.permissions import PERMISSIONS, permissions_for_roles
from portal.services import audit, auth_throttle, token_cache, tokens
from portal.services.errors import Invalid, NotFound
from portal.services.tenants import get_tenant_by_slug
from portal.tenancy import Principal, request_actor, set_principal

log = logging.getLogger(__name__)

JWKS_TTL_SECONDS = 300
JWKS_REFETCH_MIN_SECONDS = 10  # an unknown kid refetches the JWKS, but not more often than this
JWKS_TIMEOUT_SECONDS = 5
JWKS_MAX_BYTES = 256 * 1024
JWT_LEEWAY_SECONDS = 30
SYMMETRIC = {"HS256", "HS384", "HS512"}
ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


class AuthFailure(Exception):
    """Why a bearer credential was refused; `reason` goes to the audit log, never to the caller."""

    def __init__(self, reason: str, tenant_id: int | None = None, kind: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.tenant_id = tenant_id
        self.kind = kind


# ---- API tokens -----------------------------------------------------------------------------------------------


def _token_principal(secret: str, epoch: str | None) -> Principal:
    found = tokens.authenticate_with_tenant(secret)
    if found is None:
        raise _token_failure(secret)
    token, tenant = found
    if not tenant.is_active:
        raise AuthFailure("tenant_inactive", token.tenant_id, "token")
    token_cache.remember(token_cache.digest(secret), token, tenant, epoch)
    return _principal_of_token(tenant, token.id, token.name, token.prefix, token.scopes or ())


def _principal_of_token(tenant: Any, token_id: int, name: str, prefix: str, scopes: Any) -> Principal:
    return Principal(
        kind="token",
        tenant=tenant,
        permissions=frozenset(s for s in scopes if s in PERMISSIONS),
        actor_id=str(token_id),
        label=f"token {name} ({tokens.TOKEN_PREFIX}{prefix})",
    )


def _cached_token(ip: str | None) -> tuple[Principal | None, ratelimit.Outcome | None]:
    """The caller from this process's token cache, with the call counted (one Redis round trip), or (None, the
    outcome when it was counted already) when the token is not cached or the cache's epoch has moved on."""
    credential = _bearer_credential()
    if credential is None or not credential.startswith(tokens.TOKEN_PREFIX):
        return None, None
    secret_digest = token_cache.digest(credential)
    entry = token_cache.lookup(secret_digest)
    if entry is None:
        return None, None
    tenant = entry.tenant_row()
    outcome = ratelimit.check(ip, f"token:{entry.token_id}", tenant)
    if outcome.throttle_wait is not None:
        return None, outcome
    if outcome.epoch is None or outcome.epoch != entry.epoch:
        token_cache.clear()  # a token or tenant changed somewhere (or Redis cannot say): read it again
        return None, outcome
    tokens.touch(entry)
    return _principal_of_token(tenant, entry.token_id, entry.name, entry.prefix, entry.scopes), outcome


def _token_failure(secret: str) -> AuthFailure:
    """Tell revoked and expired tokens apart from unknown ones, for the audit log only."""
    reason, tenant_id = tokens.failure_reason(secret)
    return AuthFailure(reason, tenant_id, "token")


# ---- JWTs -----------------------------------------------------------------------------------------------------


class _JwksCache:
    """The identity provider's signing keys, kept in this process for a few minutes.

    Keys are public and re-fetchable, so a per-process copy is fine; an unknown `kid` (key rotation)
    triggers one refetch, at most every JWKS_REFETCH_MIN_SECONDS so random kids cannot hammer the provider.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[KeySet, float]] = {}
        self._last_miss: dict[str, float] = {}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._last_miss.clear()

    def key_set(self, url: str, kid: str | None) -> KeySet:
        with self._lock:
            entry = self._entries.get(url)
            now = time.monotonic()
            stale = entry is None or now - entry[1] >= JWKS_TTL_SECONDS
            unknown = entry is not None and kid is not None and all(k.kid != kid for k in entry[0].keys)
            # A rotated key shows up as an unknown kid: refetch, but not more often than the minimum interval.
            miss = unknown and now - self._last_miss.get(url, float("-inf")) >= JWKS_REFETCH_MIN_SECONDS
            if stale or miss:
                if miss:
                    self._last_miss[url] = now
                try:
                    entry = (self._fetch(url), now)
                except Exception as exc:
                    log.warning("JWKS fetch from %s failed: %s", url, exc)
                    if entry is None:
                        raise AuthFailure("jwks_unavailable", kind="jwt") from None
                else:
                    self._entries[url] = entry
            assert entry is not None
            return entry[0]

    @staticmethod
    def _fetch(url: str) -> KeySet:
        # The hardened outbound client: pinned to the checked address, no redirects, bounded time and size.
        # JWT_JWKS_URL is the operator's own setting, so an identity provider on a private network is allowed.
        answer = outbound.request(
            "GET",
            url,
            allow_private=True,
            timeout=JWKS_TIMEOUT_SECONDS,
            max_bytes=JWKS_MAX_BYTES,
            headers={"Accept": "application/json"},
        )
        if not answer.ok:
            raise ValueError(f"JWKS answered HTTP {answer.status}")
        if answer.truncated:
            raise ValueError(f"JWKS larger than {JWKS_MAX_BYTES} bytes")
        return KeySet.import_key_set(json.loads(answer.body))


jwks_cache = _JwksCache()


def _jwt_header(value: str) -> dict[str, Any]:
    try:
        segment = value.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise AuthFailure("jwt_malformed", kind="jwt") from None
    if not isinstance(header, dict):
        raise AuthFailure("jwt_malformed", kind="jwt")
    return header


def _allowed_algorithms(cfg: dict[str, Any]) -> set[str]:
    configured = {a for a in (cfg.get("JWT_ALGORITHMS") or []) if a and a.lower() != "none"}
    allowed = set()
    if cfg.get("JWT_HS256_SECRET"):
        allowed |= configured & SYMMETRIC
    if cfg.get("JWT_JWKS_URL"):
        allowed |= configured & ASYMMETRIC
    return allowed


def _check_lifetime(claims: dict[str, Any], max_lifetime: int) -> None:
    """Refuse long-lived JWTs: exp - iat at most `max_lifetime` seconds. Without iat, what is left of the token
    (exp - now) must fit; an iat in the future (beyond the leeway) is refused too."""
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise AuthFailure("jwt_invalid_exp", kind="jwt")
    now = time.time()
    if iat is None:
        start = now
    elif isinstance(iat, (int, float)) and not isinstance(iat, bool):
        if iat > now + JWT_LEEWAY_SECONDS:
            raise AuthFailure("jwt_invalid_iat", kind="jwt")
        start = iat
    else:
        raise AuthFailure("jwt_invalid_iat", kind="jwt")
    if exp - start > max_lifetime + JWT_LEEWAY_SECONDS:
        raise AuthFailure("jwt_lifetime_too_long", kind="jwt")


def _jwt_principal(value: str) -> Principal:
    cfg = current_app.config
    if not (cfg.get("JWT_ISSUER") and cfg.get("JWT_AUDIENCE")):
        # Without an expected issuer and audience any token of the provider would do; refuse them all.
        raise AuthFailure("jwt_not_configured", kind="jwt")
    header = _jwt_header(value)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in _allowed_algorithms(cfg):
        raise AuthFailure("jwt_algorithm_not_allowed", kind="jwt")
    if alg in SYMMETRIC:
        key: Any = OctKey.import_key(cfg["JWT_HS256_SECRET"])
    else:
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        key_set = jwks_cache.key_set(cfg["JWT_JWKS_URL"], kid)
        try:
            key = key_set.get_by_kid(kid)
        except JoseError:
            raise AuthFailure("jwt_unknown_key", kind="jwt") from None
    try:
        token = jwt.decode(value, key, algorithms=[alg])
    except JoseError:
        raise AuthFailure("jwt_bad_signature", kind="jwt") from None
    except ValueError:
        raise AuthFailure("jwt_malformed", kind="jwt") from None
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(
        leeway=JWT_LEEWAY_SECONDS,
        iss={"essential": True, "value": cfg["JWT_ISSUER"]},
        aud={"essential": True, "value": cfg["JWT_AUDIENCE"]},
        exp={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        claim = getattr(exc, "claim", None) or "claims"
        reason = "jwt_expired" if exc.__class__.__name__ == "ExpiredTokenError" else f"jwt_invalid_{claim}"
        raise AuthFailure(reason, kind="jwt") from None
    _check_lifetime(claims, int(cfg["JWT_MAX_LIFETIME"]))
    slug = claims.get(cfg["JWT_TENANT_CLAIM"])
    if not isinstance(slug, str) or not slug:
        raise AuthFailure("jwt_no_tenant", kind="jwt")
    try:
        tenant = get_tenant_by_slug(slug)
    except NotFound:
        raise AuthFailure("jwt_unknown_tenant", kind="jwt") from None
    if not tenant.is_active:
        raise AuthFailure("tenant_inactive", tenant.id, "jwt")
    roles = claims.get(cfg["JWT_ROLES_CLAIM"]) or []
    if isinstance(roles, str):
        roles = roles.replace(",", " ").split()
    roles = [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []
    subject = str(claims.get("sub") or "unknown")
    return Principal(
        kind="jwt",
        tenant=tenant,
        permissions=permissions_for_roles(roles),
        actor_id=subject[:64],
        label=f"jwt {subject}"[:254],
        role=roles[0] if roles else None,
    )


# ---- the request check ----------------------------------------------------------------------------------------


def _bearer_credential() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    return credential if credential and scheme.lower() == "bearer" else None


def authenticate_request(epoch: str | None = None) -> Principal:
    """The caller named by the Authorization header; raises AuthFailure. A token read from the database is kept
    in the token cache under `epoch` (the cache's epoch read before it; None: not kept)."""
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if not header:
        raise AuthFailure("missing_credentials")
    if scheme.lower() != "bearer" or not credential:
        raise AuthFailure("not_bearer")
    if credential.startswith(tokens.TOKEN_PREFIX):
        return _token_principal(credential, epoch)
    if credential.count(".") == 2:
        return _jwt_principal(credential)
    raise AuthFailure("credential_unrecognised")


def _refuse(failure: AuthFailure) -> Response:
    from portal.errors import error_response

    db.session.rollback()
    # One audit row per address, tenant and minute, counting the failures (and throttling the address).
    auth_throttle.record_failure(
        request.remote_addr,
        failure.tenant_id,
        request_actor("anonymous"),
        failure.reason,
        {"kind": failure.kind, "method": request.method, "path": request.path},
    )
    response = error_response(401, "unauthorized", "Missing, invalid, expired or revoked bearer credentials.")
    response.headers["WWW-Authenticate"] = 'Bearer realm="waha"'
    return response


def _throttled(retry_after: int) -> Response:
    from portal.errors import error_response

    return error_response(
        429,
        "rate_limited",
        "Too many failed authentications from this address; try again later.",
        {"scope": "authentication"},
        retry_after=retry_after,
    )


def _forbid(principal: Principal, permission: str) -> Response:
    from portal.errors import error_response

    audit.record(
        principal.tenant.id,
        "auth.api_forbidden",
        principal.actor(),
        details={"permission": permission, "method": request.method, "path": request.path},
        commit=True,
    )
    return error_response(
        403, "forbidden", f"This credential lacks the '{permission}' permission.", {"required": permission}
    )


def forbid(principal: Principal, permission: str) -> Response:
    """The audited 403 of a view that needs `permission` beyond the one its route declares."""
    return _forbid(principal, permission)


def _rate_limited(outcome: ratelimit.Outcome) -> Response:
    from portal.errors import error_response

    return error_response(
        429,
        "rate_limited",
        "Too many requests; slow down and retry later.",
        retry_after=max(1, math.ceil(outcome.reset_in)),
    )


@bp.after_request
def _rate_limit_headers(response: Response) -> Response:
    """X-RateLimit-* from the call's own count: no second look at Redis."""
    outcome = g.get("rate_limit")
    if outcome is not None:
        response.headers.update(outcome.headers())
    return response


def _resolve(ip: str | None, autocommit: bool) -> Principal | Response:
    """The caller, with its call counted: a principal, or the refusal to answer (401, 429)."""
    principal, outcome = _cached_token(ip)
    if outcome is not None and outcome.throttle_wait is not None:
        return _throttled(outcome.throttle_wait)
    if principal is None:
        # Before any credential is looked at: an address that keeps failing is refused for the minute.
        first = ratelimit.check(ip, None)
        if first.throttle_wait is not None:
            return _throttled(first.throttle_wait)
        try:
            principal = authenticate_request(first.epoch)
        except AuthFailure as failure:
            return _refuse(failure)
        if outcome is None:  # counted after authentication: the limit is per caller
            outcome = ratelimit.check(ip, principal.key, principal.tenant)
            if outcome.throttle_wait is not None:
                return _throttled(outcome.throttle_wait)
        if autocommit:
            begin_autocommit(db.session())  # again if authentication committed (a token's last use)
    set_principal(principal)
    g.rate_limit = outcome
    return principal


def api_route(permission: str, *, autocommit: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the permission an endpoint needs: authenticate the bearer, rate-limit, check, then run.

    `autocommit=True` is for views whose service writes single statements on the way and knows it (the send
    endpoints, see messages.send_message): their requests run on the autocommit engine (portal.dbengines) and
    skip the transaction round trips.
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if autocommit:
                begin_autocommit(db.session())
            principal = _resolve(request.remote_addr, autocommit)
            if isinstance(principal, Response):
                return principal
            # Counted before the permission check: refusals count too.
            if g.rate_limit.exceeded:
                return _rate_limited(g.rate_limit)
            if not principal.can(permission):
                return _forbid(principal, permission)
            if request.args and request.endpoint in _without_query():
                _refuse_query()
            return view(*args, **kwargs)

        wrapped.required_permission = permission  # type: ignore[attr-defined]  # read back by the route checks
        return wrapped

    return decorator


@functools.cache
def _without_query() -> frozenset[str]:
    """The endpoints whose document names no query parameter (the others check theirs with their query model)."""
    from portal.api.openapi import ROUTES

    return frozenset(route.endpoint for route in ROUTES if route.query is None)


def _refuse_query() -> None:
    """An endpoint that takes no query parameter refuses one, as the others refuse an unknown one."""
    fields = [{"field": name, "message": "Unknown field."} for name in request.args]
    raise Invalid(f"Invalid query: {fields[0]['field']}: Unknown field.", details={"fields": fields})


def public(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an endpoint that needs no credentials (the OpenAPI document and the docs page)."""
    view.required_permission = None  # type: ignore[attr-defined]  # read back by the route checks
    return view
