"""Secrets shown once after a create (API token, invitation link, webhook signing secret).

A create answers with a redirect, so reloading the result page never repeats the create. The secret must not
travel in that redirect's URL or in a cookie, so it waits in Redis, encrypted, under a random one-time key for
a few minutes; the page the redirect leads to reads and deletes it in one step. The Redis key also names the
tenant and the user who created it, so nobody else can read (or burn) it with the link.

Pages use `keep_for_viewer` / `take_for_viewer` (scope: the tenant and the signed-in person) and answer a key
read already with `gone`.

Redis down: the sealed secret waits in this web process's memory instead (same TTL, same one read). The
result page then finds it when the redirect lands on the same process, which a single-process deployment
always does; with several web processes the page may say the secret is gone, and the token or link has to
be replaced. Never a 500, and the secret is never written anywhere else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from typing import Any

import redis
from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.extensions import redis_store
from portal.web.helpers import page, principal

TTL_SECONDS = 600
PREFIX = "portal:web:once"
_KEY_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
log = logging.getLogger(__name__)

# Redis down: {redis key: (expires at, sealed payload)} of this process
_local: dict[str, tuple[float, bytes]] = {}
_local_lock = threading.Lock()


def _keep_locally(name: str, sealed: bytes) -> None:
    now = time.monotonic()
    with _local_lock:
        for stale in [k for k, (expires, _) in _local.items() if expires < now]:
            del _local[stale]
        _local[name] = (now + TTL_SECONDS, sealed)


def _take_locally(name: str) -> bytes | None:
    with _local_lock:
        kept = _local.pop(name, None)
    if kept is None or kept[0] < time.monotonic():
        return None
    return kept[1]


def _fernet() -> Fernet:
    secret = current_app.config.get("ENCRYPTION_KEY") or current_app.config["SECRET_KEY"]
    key = base64.urlsafe_b64encode(hashlib.sha256(("portal-once:" + str(secret)).encode()).digest())
    return Fernet(key)


def _redis_key(kind: str, scope: tuple[Any, ...], key: str) -> str:
    return ":".join([PREFIX, kind, *(str(part) for part in scope), key])


def keep(kind: str, scope: tuple[Any, ...], payload: dict[str, Any]) -> str:
    """Store `payload` for one read by the same `scope` (tenant id, user id) within TTL_SECONDS; returns the
    one-time key to put in the result page's URL."""
    key = secrets.token_urlsafe(24)
    sealed = _fernet().encrypt(json.dumps(payload).encode())
    name = _redis_key(kind, scope, key)
    try:
        redis_store.client.set(name, sealed, ex=TTL_SECONDS)
    except redis.RedisError:
        log.warning("one-time %s kept in this process: Redis is unavailable", kind)
        _keep_locally(name, sealed)
    return key


def take(kind: str, scope: tuple[Any, ...], key: str) -> dict[str, Any] | None:
    """The payload kept under `key`, deleted as it is read; None when it was read already, expired, or
    belongs to someone else."""
    if not _KEY_SHAPE.match(key or ""):
        return None
    name = _redis_key(kind, scope, key)
    sealed = _take_locally(name) if _local else None
    if sealed is None:
        try:
            value = redis_store.client.getdel(name)
            sealed = value.encode() if isinstance(value, str) else value
        except redis.RedisError:
            sealed = None
    if sealed is None:
        return None
    try:
        return json.loads(_fernet().decrypt(sealed, ttl=TTL_SECONDS))
    except (InvalidToken, ValueError):
        return None


def keep_for_viewer(kind: str, payload: dict[str, Any]) -> str:
    """`keep` for one read by the signed-in person in the current tenant."""
    return keep(kind, _viewer(), payload)


def take_for_viewer(kind: str, key: str) -> dict[str, Any] | None:
    """`take` for the signed-in person in the current tenant."""
    return take(kind, _viewer(), key)


def _viewer() -> tuple[int, int]:
    return (principal().tenant.id, current_user.id)


def gone(title: str, message: str, back: str, back_label: str) -> Response:
    """The answer when a secret shown once was shown already (or its time ran out): 410, kept out of caches."""
    return page(
        "admin/secret_gone.html", 410, no_store=True, title=title, message=message, back=back, back_label=back_label
    )
