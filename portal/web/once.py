"""Secrets shown once after a create (API token, invitation link, webhook signing secret).

A create answers with a redirect, so reloading the result page never repeats the create. The secret must not
travel in that redirect's URL or in a cookie, so it waits in Redis, encrypted, under a random one-time key for
a few minutes; the page the redirect leads to reads and deletes it in one step. The Redis key also names the
tenant and the user who created it, so nobody else can read (or burn) it with the link.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

from portal.extensions import redis_store

TTL_SECONDS = 600
PREFIX = "portal:web:once"
_KEY_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


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
    redis_store.client.set(_redis_key(kind, scope, key), sealed, ex=TTL_SECONDS)
    return key


def take(kind: str, scope: tuple[Any, ...], key: str) -> dict[str, Any] | None:
    """The payload kept under `key`, deleted as it is read; None when it was read already, expired, or
    belongs to someone else."""
    if not _KEY_SHAPE.match(key or ""):
        return None
    sealed = redis_store.client.getdel(_redis_key(kind, scope, key))
    if sealed is None:
        return None
    try:
        return json.loads(_fernet().decrypt(sealed, ttl=TTL_SECONDS))
    except (InvalidToken, ValueError):
        return None
