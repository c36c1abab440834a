"""Building the ZIP files of the exports on disk: JSON documents written as they are read (a large message list
never sits in memory whole), stored files copied from portal storage in chunks, and the finished file streamed
back and removed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

from sqlalchemy import inspect

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


def plain(value: Any) -> Any:
    """A value as JSON can hold it (times as ISO 8601)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def row(obj: Any, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every column of an ORM row by attribute name, except `skip` (secrets)."""
    mapper = inspect(type(obj))
    return {attr.key: plain(getattr(obj, attr.key)) for attr in mapper.column_attrs if attr.key not in skip}


class Archive:
    """A ZIP file being written in a temporary file; `path` once closed. The caller removes it (`stream_file`)."""

    def __init__(self, prefix: str) -> None:
        handle, self.path = tempfile.mkstemp(prefix=prefix, suffix=".zip")
        os.close(handle)
        self.zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self.files = 0
        self.missing: list[str] = []

    def json(self, name: str, data: Any) -> None:
        self.zip.writestr(name, json.dumps(plain(data), ensure_ascii=False, indent=2))

    def json_list(self, name: str, items: Iterable[Any]) -> int:
        """Write a JSON array item by item; how many items."""
        count = 0
        with self.zip.open(name, "w", force_zip64=True) as out:
            out.write(b"[")
            for item in items:
                out.write((b",\n" if count else b"\n") + json.dumps(plain(item), ensure_ascii=False).encode())
                count += 1
            out.write(b"\n]\n" if count else b"]\n")
        return count

    def stored_file(self, name: str, key: str) -> bool:
        """Copy one file from portal storage into the archive in chunks; False (and noted) when it is gone."""
        from portal.storage import storage

        try:
            source = storage().open(key)
        except Exception as exc:
            log.info("export: stored file %r not copied: %s", key, type(exc).__name__)
            self.missing.append(key)
            return False
        try:
            with self.zip.open(name, "w", force_zip64=True) as out:
                shutil.copyfileobj(source, out, CHUNK)
        finally:
            source.close()
        self.files += 1
        return True

    def close(self) -> str:
        self.zip.close()
        return self.path

    def discard(self) -> None:
        try:
            self.zip.close()
        finally:
            remove(self.path)


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def stream_file(path: str) -> Iterator[bytes]:
    """The file in chunks; removed once read to the end or when the client goes away."""
    try:
        with open(path, "rb") as source:
            while chunk := source.read(CHUNK):
                yield chunk
    finally:
        remove(path)


def file_name(key: str, fallback: str) -> str:
    """The last part of a storage key (the portal chose it: no sender's filename), for a name in the archive."""
    last = key.rsplit("/", 1)[-1]
    return last or fallback
