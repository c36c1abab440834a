"""The send form's file: the limit told to the browser, uploads over the limit refused in words, and what was
attached (a file or a file URL) turned into the media the send service takes (`services.media`).

Uploads over the limit are refused with the form, the typed text and a clear message (413), never by a dropped
connection. The app-wide MAX_CONTENT_LENGTH (MEDIA_MAX_BYTES + 1 MiB) makes Werkzeug refuse a larger body before
reading it, and a server that answers without reading the body closes the connection: the browser shows a reset
and the text is lost. The send form therefore reads bodies up to a hard cap (files spool to disk, not memory), so
the view can refuse the file in words and give the form back. Past the cap the body is read and dropped
(bounded) before the 413 page (`send_form.too_large`), so the browser still gets the answer.
"""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import urlparse

from flask import current_app, request
from flask_babel import format_decimal
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from portal.i18n import N_
from portal.i18n import gettext as _
from portal.services.errors import Invalid
from portal.services.media import outgoing_media, uploaded_media
from portal.web.forms import SendMessageForm

# Bodies up to this many times the media limit are parsed, so the form comes back with the text.
HARD_CAP_FACTOR = 4
# The forms that carry a file: the send page and the inbox composer.
SEND_ENDPOINTS = ("messages.send", "inbox_thread.send")
# At most this much of a larger body is read and dropped so that the 413 reaches the browser.
DRAIN_MAX_BYTES = 512 * 1024 * 1024


def media_limit() -> int:
    """The largest file the send form takes, in bytes."""
    return int(current_app.config["MEDIA_MAX_BYTES"])


def limit_text() -> str:
    limit = media_limit()
    return f"{limit / (1024 * 1024):g} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def too_large_message(size: int | None = None) -> str:
    if size:
        return _(
            "That file is too large to send (this one is %(size)s MB): the limit is %(limit)s. "
            "Choose a smaller file or share a link to it instead.",
            size=format_decimal(size / (1024 * 1024), format="#,##0.0"),
            limit=limit_text(),
        )
    return _(
        "That file is too large to send: the limit is %(limit)s. Choose a smaller file or share a link to it instead.",
        limit=limit_text(),
    )


def allow_large_send_body(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Runs before the CSRF check reads the form: lift the body limit of the send form to the hard cap."""
    if endpoint in SEND_ENDPOINTS and request.method == "POST":
        request.max_content_length = media_limit() * HARD_CAP_FACTOR + 1024 * 1024


def limit_file_field(form: SendMessageForm) -> None:
    """Tell the browser the limit, so a file too large is refused before it is uploaded (static/js/portal.js)."""
    form.media_file.render_kw = {"data-max-bytes": media_limit(), "data-too-large": too_large_message()}


def file_size(upload: FileStorage) -> int:
    """Size of an uploaded file without reading it into memory."""
    stream = upload.stream
    position = stream.tell()
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(position)
    return size


def drain_body() -> None:
    """Read and drop (up to DRAIN_MAX_BYTES of) a body that is refused unread, so the answer reaches the browser."""
    stream = request.environ.get("wsgi.input")
    left = min(request.content_length or 0, DRAIN_MAX_BYTES)
    while stream is not None and left > 0:
        chunk = stream.read(min(left, 1024 * 1024))
        if not chunk:
            break
        left -= len(chunk)


def media_from(form: SendMessageForm, caption: str | None) -> dict[str, Any] | None:
    """The file the form carries (uploaded, or by URL) as media for `send_message`; None without one. Invalid
    for a file over the limit or an empty one."""
    kind = form.media_kind.data or None
    upload = form.media_file.data
    if upload and getattr(upload, "filename", ""):
        return upload_media(upload, kind=kind, caption=caption)
    if form.media_url.data:
        url = form.media_url.data.strip()
        filename = secure_filename(urlparse(url).path.rsplit("/", 1)[-1]) or "file"
        mimetype = mimetypes.guess_type(filename)[0]
        return outgoing_media(kind=kind, url=url, filename=filename, mimetype=mimetype, caption=caption)
    return None


def upload_media(upload: FileStorage, *, kind: str | None = None, caption: str | None = None) -> dict[str, Any]:
    """An uploaded file (field "media_file") as media for `send_message`; Invalid for a file over the limit
    (code media_too_large) or an empty one."""
    size = file_size(upload)
    if size > media_limit():
        message = too_large_message(size)
        raise Invalid(
            message, code="media_too_large", details={"fields": [{"field": "media_file", "message": message}]}
        )
    content = upload.read()
    if not content:
        raise Invalid.field("media_file", N_("That file is empty."))
    return uploaded_media(content, secure_filename(upload.filename or ""), upload.mimetype, kind=kind, caption=caption)
