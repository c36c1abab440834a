"""Uploads over the limit on the send form: refused with the form, the typed text and a clear message (413),
never by a dropped connection.

The app-wide MAX_CONTENT_LENGTH (MEDIA_MAX_BYTES + 1 MiB) makes Werkzeug refuse a larger body before reading
it, and a server that answers without reading the body closes the connection: the browser shows a reset and
the text is lost. The send form therefore reads bodies up to a hard cap (files spool to disk, not memory), so
the view can refuse the file in words and give the form back. Past the cap the body is read and dropped
(bounded) before the 413 page, so the browser still gets the answer.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

# Bodies up to this many times the media limit are parsed, so the form comes back with the text.
HARD_CAP_FACTOR = 4
# At most this much of a larger body is read and dropped so that the 413 reaches the browser.
DRAIN_MAX_BYTES = 512 * 1024 * 1024


def media_limit() -> int:
    """The largest file the send form takes, in bytes."""
    return int(current_app.config["MEDIA_MAX_BYTES"])


def limit_text() -> str:
    limit = media_limit()
    return f"{limit / (1024 * 1024):g} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def too_large_message(size: int | None = None) -> str:
    have = f" (this one is {size / (1024 * 1024):.1f} MB)" if size else ""
    return (
        f"That file is too large to send{have}: the limit is {limit_text()}. Choose a smaller file or "
        "share a link to it instead."
    )


def allow_large_send_body(endpoint: str | None, values: Any) -> None:
    """Runs before the CSRF check reads the form: lift the body limit of the send form to the hard cap."""
    if endpoint == "messages.send" and request.method == "POST":
        request.max_content_length = media_limit() * HARD_CAP_FACTOR + 1024 * 1024


def limit_file_field(form: Any) -> None:
    """Tell the browser the limit, so a file too large is refused before it is uploaded (static/js/portal.js)."""
    form.media_file.render_kw = {"data-max-bytes": media_limit(), "data-too-large": too_large_message()}


def file_size(upload: Any) -> int:
    """Size of an uploaded file without reading it into memory."""
    stream = upload.stream
    position = stream.tell()
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(position)
    return size


def _drain() -> None:
    stream = request.environ.get("wsgi.input")
    left = min(request.content_length or 0, DRAIN_MAX_BYTES)
    while stream is not None and left > 0:
        chunk = stream.read(min(left, 1024 * 1024))
        if not chunk:
            break
        left -= len(chunk)


def too_large(exc: RequestEntityTooLarge) -> Response:
    """A body past the hard cap: the send form again, empty but for the reason, with status 413."""
    _drain()
    from portal.web.send_form import refused_form

    return refused_form(too_large_message(request.content_length), 413)
