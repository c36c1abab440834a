"""The local backend: files under one root folder (MEDIA_ROOT), the embedded default."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from portal.storage.errors import check_key

CHUNK = 1024 * 1024


class LocalStorage:
    """Files under one root folder; writes go to a temporary file first so a reader never sees half a file."""

    name = "local"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        # Keys come from the portal, but a bad one must never reach outside the root.
        if self.root not in path.parents:
            raise ValueError(f"storage key outside the media root: {key!r}")
        return path

    def put(self, key: str, stream: BinaryIO, mimetype: str) -> int:
        """Store what `stream` holds (read in chunks) under `key`, replacing what was there; the size written."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                shutil.copyfileobj(stream, handle, CHUNK)
                size = handle.tell()
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return size

    def save(self, key: str, data: bytes, mimetype: str) -> None:
        """Store `data` under `key`, replacing what was there."""
        import io

        self.put(key, io.BytesIO(data), mimetype)

    def open(self, key: str) -> BinaryIO:
        """A seekable binary file object for reading (the caller closes it); FileNotFoundError when missing."""
        return self._path(key).open("rb")

    def size(self, key: str) -> int:
        """The stored size in bytes; FileNotFoundError when missing."""
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path.stat().st_size

    def delete(self, key: str) -> None:
        """Remove the file; a missing file is not an error."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def exists(self, key: str) -> bool:
        """Whether a file is stored under `key`."""
        return self._path(key).is_file()

    def presigned_url(self, key: str, *, expires: int, mimetype: str, disposition: str) -> str | None:
        """Local files have no URL of their own: always None (they are streamed by the portal)."""
        return None

    def list_keys(self) -> list[str]:
        """Every stored key, sorted (temporary files of writes in progress left out)."""
        found = []
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if not name.startswith(".part-"):
                    found.append(Path(folder, name).relative_to(self.root).as_posix())
        return sorted(found)
