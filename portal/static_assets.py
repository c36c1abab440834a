"""Static files under content-hashed names, cached by browsers for a year; and compressed responses.

`url_for("static", filename="css/portal.css")` gives `/static/css/portal.3f2a9c1b0d4e.css`: the name carries the
first 12 hex digits of the file's SHA-256, so a changed file gets a new address and the old one may be cached
forever (`Cache-Control: public, max-age=31536000, immutable`). The unhashed address still answers, with
`no-cache` (a browser revalidates it), for anything that links a file by its plain name. The table is built once at
start-up from the files on disk (a few dozen: microseconds per file); in debug mode a file is hashed again when
its size or modification time changed, so edits show without a restart.

Compression (flask-compress) covers HTML, JSON, CSS, JavaScript, SVG and plain text above 500 bytes, brotli
first, then gzip; streamed responses (CSV exports, media) are left alone. HTML pages carry a CSRF token, which
makes compression a BREACH question: the session cookie is SameSite=Lax, so another site cannot make the browser
send the many signed-in requests that attack needs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, send_from_directory
from flask_compress import Compress

YEAR = 365 * 24 * 3600
IMMUTABLE = f"public, max-age={YEAR}, immutable"
HASH_LENGTH = 12

compress = Compress()

COMPRESS_SETTINGS = {
    "COMPRESS_MIMETYPES": [
        "text/html",
        "text/css",
        "text/plain",
        "text/javascript",
        "application/javascript",
        "application/json",
        "application/problem+json",
        "image/svg+xml",
    ],
    "COMPRESS_ALGORITHM": ["br", "gzip"],
    "COMPRESS_BR_LEVEL": 4,
    "COMPRESS_LEVEL": 6,
    "COMPRESS_MIN_SIZE": 500,
    "COMPRESS_STREAMS": False,
}


@dataclass(frozen=True)
class _Entry:
    hashed: str
    size: int
    mtime_ns: int


def hashed_name(filename: str, digest: str) -> str:
    """`css/portal.css` + digest -> `css/portal.<12 hex>.css` (the hash goes before the last suffix)."""
    head, dot, suffix = filename.rpartition(".")
    if not dot or "/" in suffix:
        return f"{filename}.{digest[:HASH_LENGTH]}"
    return f"{head}.{digest[:HASH_LENGTH]}.{suffix}"


class StaticManifest:
    """Plain name <-> hashed name for every file under one folder."""

    def __init__(self, root: Path, *, watch: bool = False) -> None:
        self.root = root
        self.watch = watch
        self._by_name: dict[str, _Entry] = {}
        self._by_hashed: dict[str, str] = {}
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    self._add(path.relative_to(root).as_posix(), path)

    def _add(self, name: str, path: Path) -> _Entry:
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        entry = _Entry(hashed_name(name, digest), stat.st_size, stat.st_mtime_ns)
        previous = self._by_name.get(name)
        if previous is not None:
            self._by_hashed.pop(previous.hashed, None)
        self._by_name[name] = entry
        self._by_hashed[entry.hashed] = name
        return entry

    def url_name(self, name: str) -> str:
        """The hashed name to link `name` by; the plain name for a file the table does not know."""
        entry = self._by_name.get(name)
        if entry is not None and self.watch:
            path = self.root / name
            try:
                stat = path.stat()
            except OSError:
                return name
            if (stat.st_size, stat.st_mtime_ns) != (entry.size, entry.mtime_ns):
                entry = self._add(name, path)
        return entry.hashed if entry is not None else name

    def plain_name(self, hashed: str) -> str | None:
        return self._by_hashed.get(hashed)


def init_app(app: Flask) -> None:
    """Hashed static addresses for `url_for`, the static view that serves them, and response compression."""
    static_folder = Path(app.static_folder or "static")
    manifest = StaticManifest(static_folder, watch=app.debug or bool(os.environ.get("FLASK_DEBUG")))
    app.extensions["portal_static_manifest"] = manifest

    @app.url_defaults
    def _hashed_static(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and isinstance(values.get("filename"), str):
            values["filename"] = manifest.url_name(values["filename"])

    def static(filename: str) -> Response:
        plain = manifest.plain_name(filename)
        if plain is None:
            return app.send_static_file(filename)  # the plain address: revalidated (no-cache), as Flask does
        response = send_from_directory(static_folder, plain, max_age=YEAR)
        response.headers["Cache-Control"] = IMMUTABLE
        # Read into memory (these files are small) so that compression applies; a file stream is left alone.
        response.direct_passthrough = False
        response.make_sequence()
        return response

    app.view_functions["static"] = static
    for key, value in COMPRESS_SETTINGS.items():
        app.config.setdefault(key, value)
    compress.init_app(app)
