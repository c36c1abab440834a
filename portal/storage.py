"""Where the portal keeps files it owns (inbound media): one small interface, a local folder by default.

Keys are relative paths chosen by the portal (never by a sender), e.g. ``"7/3f2c.../1234.jpeg"``. Another backend
(S3, a network share) only needs the same four methods.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import current_app


class Storage(Protocol):
    def save(self, key: str, data: bytes, mimetype: str) -> None: ...

    def open(self, key: str) -> BinaryIO: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


class LocalStorage:
    """Files under one root folder; writes go to a temporary file first so a reader never sees half a file."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # Keys come from the portal, but a bad one must never reach outside the root.
        if self.root not in path.parents:
            raise ValueError(f"storage key outside the media root: {key!r}")
        return path

    def save(self, key: str, data: bytes, mimetype: str) -> None:
        """Store `data` under `key`, replacing what was there."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def open(self, key: str) -> BinaryIO:
        """A binary file object for reading (the caller closes it); FileNotFoundError when missing."""
        return self._path(key).open("rb")

    def delete(self, key: str) -> None:
        """Remove the file; a missing file is not an error."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def exists(self, key: str) -> bool:
        """Whether a file is stored under `key`."""
        return self._path(key).is_file()


def storage() -> Storage:
    """The storage of the current app (a LocalStorage at MEDIA_ROOT)."""
    extensions = current_app.extensions
    store = extensions.get("portal_storage")
    root = current_app.config["MEDIA_ROOT"]
    if store is None or getattr(store, "root", None) != Path(root).resolve():
        store = LocalStorage(root)
        extensions["portal_storage"] = store
    return store
