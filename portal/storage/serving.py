"""Serving a stored file back through the portal's own authorised routes (the caller has checked the tenant).

Two ways, by the settings: streamed through the portal (the default, and always for the local backend), with
Content-Length and Range requests answered (206) from the store; or, with MEDIA_PRESIGNED_URLS on an S3 backend, a
302 to a presigned URL valid MEDIA_PRESIGNED_TTL seconds, signed with the same Content-Type and
Content-Disposition, so the bytes go from the bucket straight to the client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO

from flask import Response, current_app, request, send_file
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from portal.services.errors import NotFound, StorageDown
from portal.storage import StorageUnavailable, storage


@dataclass(frozen=True)
class StoredFile:
    """A file the caller may see: its key, the type to serve it under and the name it downloads as ("": none,
    served inline without a name)."""

    key: str
    mimetype: str
    download_name: str


def content_disposition(as_attachment: bool, download_name: str) -> str:
    """The Content-Disposition value a streamed answer carries (Werkzeug's form: filename, and filename* for
    names that are not ASCII)."""
    import unicodedata
    from urllib.parse import quote

    try:
        download_name.encode("ascii")
        names = {"filename": download_name}
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", download_name).encode("ascii", "ignore").decode("ascii")
        names = {"filename": simple, "filename*": f"UTF-8''{quote(download_name, safe='!#$&+-.^_`|~')}"}
    if not download_name:
        return "attachment" if as_attachment else "inline"
    headers = Headers()
    headers.set("Content-Disposition", "attachment" if as_attachment else "inline", **names)
    return headers["Content-Disposition"]


def _length(handle: BinaryIO) -> int:
    raw = getattr(handle, "raw", None)
    length = getattr(raw, "length", None)
    return int(length) if length is not None else os.fstat(handle.fileno()).st_size


def send_stored(stored: StoredFile, *, as_attachment: bool, missing: NotFound, cache_control: str) -> Response:
    """The answer serving `stored`: a presigned redirect (never cached: the URL expires) or the streamed file
    (with `cache_control`). `missing` is raised when the store no longer holds it; StorageDown (503) when the store
    cannot be reached."""
    store = storage()
    config = current_app.config
    try:
        if config.get("MEDIA_PRESIGNED_URLS"):
            store.size(stored.key)  # a missing object is the portal's 404, not the bucket's
            url = store.presigned_url(
                stored.key,
                expires=int(config["MEDIA_PRESIGNED_TTL"]),
                mimetype=stored.mimetype,
                disposition=content_disposition(as_attachment, stored.download_name),
            )
            if url:
                answer = Response(status=302, headers={"Location": url})
                answer.headers["Cache-Control"] = "private, no-store"  # the URL expires; never reuse the redirect
                return answer
        handle = store.open(stored.key)
        size = _length(handle)
    except FileNotFoundError:
        raise missing from None
    except StorageUnavailable as exc:
        current_app.logger.warning("media store unavailable: %s", exc)
        raise StorageDown() from None
    response = send_file(
        handle,
        mimetype=stored.mimetype,
        as_attachment=as_attachment,
        download_name=stored.download_name or None,
        conditional=False,
    )
    response.content_length = size
    response.headers["Cache-Control"] = cache_control
    try:
        response.make_conditional(request.environ, accept_ranges=True, complete_length=size)  # changes it in place
    except RequestedRangeNotSatisfiable:
        handle.close()
        raise
    return response
