"""Where the portal keeps files it owns (inbound media, contact pictures): one interface, two backends.

`MEDIA_STORAGE` chooses the backend: empty (the embedded default) keeps files in a local folder (`MEDIA_ROOT`,
`local.LocalStorage`); `s3://bucket/prefix` keeps them as objects in an S3-compatible bucket (`s3.S3Storage`), so
that every web host and worker sees the same files. Every caller goes through `storage()`; serving back is
`serving.send_stored`, copying local files into a bucket is `flask media migrate` (`migrate`).

Keys are chosen by the portal, never by a sender: `new_key` gives ``t/<tenant id>/<kind>/<random>.<ext>``, so a
key names its tenant (for clean-up) but cannot be guessed from another tenant's keys, and carries no part of a
filename or chat id. Keys written before this scheme (``<tenant>/<session>/<message id>.<ext>``,
``avatars/<tenant>/<contact id>.<ext>``) are recorded on their rows and keep working.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from flask import current_app

from portal.storage.errors import StorageUnavailable, check_key
from portal.storage.local import LocalStorage

__all__ = ["LocalStorage", "Storage", "StorageUnavailable", "check_key", "new_key", "parse_location", "storage"]


class Storage(Protocol):
    name: str

    def describe(self) -> str: ...

    def put(self, key: str, stream: BinaryIO, mimetype: str) -> int: ...

    def save(self, key: str, data: bytes, mimetype: str) -> None: ...

    def open(self, key: str) -> BinaryIO: ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...

    def presigned_url(self, key: str, *, expires: int, mimetype: str, disposition: str) -> str | None: ...

    def list_keys(self) -> list[str]: ...


def new_key(tenant_id: int, kind: str, suffix: str) -> str:
    """A fresh key for one of a tenant's files: ``t/<tenant>/<kind>/<128 random bits><suffix>``."""
    return check_key(f"t/{int(tenant_id)}/{kind}/{secrets.token_hex(16)}{suffix}")


def parse_location(raw: str) -> tuple[str, str] | None:
    """(bucket, prefix) of an ``s3://bucket/prefix`` location; None for "" or "local"; ValueError otherwise."""
    raw = (raw or "").strip()
    if raw in ("", "local"):
        return None
    parts = urlsplit(raw)
    bucket = parts.netloc
    if parts.scheme != "s3" or not bucket or parts.query or parts.fragment:
        raise ValueError(f'must be empty (local folder) or s3://bucket/prefix, got "{raw}"')
    if not (3 <= len(bucket) <= 63) or not all(c.isdigit() or c.islower() or c in ".-" for c in bucket):
        raise ValueError(f'names no valid bucket (3-63 of a-z, 0-9, ".", "-"), got "{raw}"')
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except ValueError:
            raise ValueError(
                f'has a prefix that is not plain path segments (a-z, 0-9, ".", "_", "-"), got "{raw}"'
            ) from None
    return bucket, prefix


def build_storage(config: Mapping[str, Any]) -> Storage:
    """The backend the settings name (the app's config or any mapping of the portal's settings)."""
    location = parse_location(str(config.get("MEDIA_STORAGE") or ""))
    if location is None:
        return LocalStorage(str(config.get("MEDIA_ROOT")))
    from portal.storage.s3 import S3Storage

    bucket, prefix = location
    return S3Storage(
        bucket,
        prefix,
        endpoint_url=config.get("MEDIA_S3_ENDPOINT_URL"),
        region=config.get("MEDIA_S3_REGION"),
        access_key_id=config.get("MEDIA_S3_ACCESS_KEY_ID"),
        secret_access_key=config.get("MEDIA_S3_SECRET_ACCESS_KEY"),
    )


_SETTINGS = ("MEDIA_STORAGE", "MEDIA_ROOT", "MEDIA_S3_ENDPOINT_URL", "MEDIA_S3_REGION", "MEDIA_S3_ACCESS_KEY_ID")


def storage() -> Storage:
    """The storage of the current app, built once per app and process (a forked job process builds its own S3
    client rather than share its parent's connections), and again when the settings change (as tests do)."""
    extensions = current_app.extensions
    signature = (os.getpid(), *(current_app.config.get(name) for name in _SETTINGS))
    held = extensions.get("portal_storage")
    if held is None or held[0] != signature:
        held = (signature, build_storage(current_app.config))
        extensions["portal_storage"] = held
    store: Storage = held[1]
    return store
