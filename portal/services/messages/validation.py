"""Checking what a send asks for: the recipient as a WAHA chat id, the text, the media file and the metadata.

Each check raises Invalid with the field it is about; `clean_media` also returns what WAHA is given and what the
message row stores of the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import re
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from flask import current_app

from portal.i18n import N_, N_f
from portal.services import destinations
from portal.services.errors import Invalid
from portal.services.media_types import SENDABLE_TYPES, base_type, is_media_type
from portal.services.recipients import normalize_recipient  # noqa: F401 (re-exported: the one recipient rule)

TEXT_MAX = 4096
CAPTION_MAX = 1024
FILENAME_MAX = 255
METADATA_MAX_ENTRIES = 20
METADATA_VALUE_MAX = 500
METADATA_NAME_MAX = 100

MediaKind = Literal["image", "document", "audio", "video"]
MEDIA_KINDS: tuple[MediaKind, ...] = get_args(MediaKind)
# What WhatsApp accepts per kind (portal.services.media_types); documents may be any type except programs.
MEDIA_TYPES = SENDABLE_TYPES
BLOCKED_DOCUMENT_TYPES = {
    "application/x-msdownload",
    "application/x-msdos-program",
    "application/x-executable",
    "application/x-sharedlib",
    "application/vnd.microsoft.portable-executable",
}
# The mimetype a file without one gets from its extension (the filename's, else the URL path's last segment):
# images, videos and voice messages by this table only; documents by any type the extension names, else
# application/octet-stream.
MEDIA_EXTENSIONS = {
    "image": {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"},
    "video": {"mp4": "video/mp4", "3gp": "video/3gpp", "mov": "video/quicktime", "webm": "video/webm"},
    "audio": {
        "ogg": "audio/ogg",
        "oga": "audio/ogg",
        "opus": "audio/opus",
        "mp3": "audio/mpeg",
        "m4a": "audio/mp4",
        "aac": "audio/aac",
        "amr": "audio/amr",
        "wav": "audio/wav",
    },
}
# Magic bytes of the image types, so a "photo" that is really something else is refused here, not by WhatsApp.
# (first bytes, positions in them that may hold anything, mimetype); the API's document states them too.
IMAGE_MAGIC: tuple[tuple[bytes, tuple[int, ...], str], ...] = (
    (b"\x89PNG\r\n\x1a\n", (), "image/png"),
    (b"\xff\xd8\xff", (), "image/jpeg"),
    (b"GIF87a", (), "image/gif"),
    (b"GIF89a", (), "image/gif"),
    (b"RIFF\0\0\0\0WEBP", (4, 5, 6, 7), "image/webp"),  # the four bytes after RIFF are the file's size
)


def _clean_text(text: Any, field: str = "text", limit: int = TEXT_MAX) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise Invalid.field(field, N_("Text must be a string."))
    if not text.strip():
        return None
    if len(text) > limit:
        raise Invalid.field(field, N_f("Text must be at most %(limit)s characters.", limit=limit))
    return text


def _decode(data: str, max_bytes: int) -> bytes:
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]  # a data: URI as browsers produce it
    data = re.sub(r"\s+", "", data)
    if len(data) * 3 // 4 > max_bytes + 3:
        raise Invalid.field("media.data", N_f("The file is larger than %(max_bytes)s bytes.", max_bytes=max_bytes))
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid.field("media.data", N_("The file must be base64 encoded.")) from None
    if not content:
        raise Invalid.field("media.data", N_("The file is empty."))
    if len(content) > max_bytes:
        raise Invalid.field("media.data", N_f("The file is larger than %(max_bytes)s bytes.", max_bytes=max_bytes))
    return content


def _sniff_image(content: bytes) -> str | None:
    for magic, anything, mimetype in IMAGE_MAGIC:
        head = content[: len(magic)]
        if len(head) == len(magic) and all(head[i] == magic[i] for i in range(len(magic)) if i not in anything):
            return mimetype
    return None


def _mimetype_for(kind: str, name: str) -> str | None:
    """The mimetype a file named `name` is sent with when none is given (see MEDIA_EXTENSIONS)."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if kind in MEDIA_EXTENSIONS:
        return MEDIA_EXTENSIONS[kind].get(extension)
    return (mimetypes.guess_type(name)[0] if name else None) or "application/octet-stream"


def _check_url(url: Any) -> str:
    # WAHA downloads this file and sends it on: the URL passes the portal's destination policy first.
    if not isinstance(url, str) or not url.strip():
        raise Invalid.field("media.url", N_("The file URL must be an http:// or https:// URL."))
    return destinations.clean_url(url, "media.url", "file URL")


def check_caption_text(kind: str | None, text: str | None) -> None:
    """The text sent with a file becomes its caption: a voice message takes none, others at most CAPTION_MAX
    characters (Invalid on "text")."""
    if kind is None or text is None:
        return
    if kind == "audio":
        raise Invalid.field("text", N_("Voice messages have no text; send the text separately."))
    if len(text) > CAPTION_MAX:
        raise Invalid.field(
            "text", N_f("A caption must be at most %(CAPTION_MAX)s characters.", CAPTION_MAX=CAPTION_MAX)
        )


def clean_media(media: Any) -> tuple[str, dict[str, Any], dict[str, Any], str | None]:
    """Validate a media dict; returns (kind, file for WAHA, description to store, caption)."""
    if not isinstance(media, dict):
        raise Invalid.field("media", N_("Media must be an object."))
    kind = media.get("kind") or media.get("type")
    if kind not in MEDIA_KINDS:
        raise Invalid.field("media.kind", N_f("Media kind must be one of %(value)s.", value=", ".join(MEDIA_KINDS)))
    has_url, has_data = bool(media.get("url")), bool(media.get("data"))
    if has_url == has_data:
        raise Invalid.field("media", N_("Give the file either as url or as base64 data, not both."))
    filename = media.get("filename")
    if filename is not None and (
        not isinstance(filename, str) or len(filename) > FILENAME_MAX or "/" in filename or "\\" in filename
    ):
        raise Invalid.field(
            "media.filename",
            N_f("Filename must be a plain name of at most %(FILENAME_MAX)s characters.", FILENAME_MAX=FILENAME_MAX),
        )
    source_name = filename or (urlsplit(media["url"]).path.rsplit("/", 1)[-1] if has_url else "")
    mimetype = media.get("mimetype") or _mimetype_for(kind, source_name)
    if not isinstance(mimetype, str) or not is_media_type(mimetype):
        raise Invalid.field("media.mimetype", N_("A valid mimetype (e.g. image/jpeg) is required."))
    base = base_type(mimetype)
    allowed = MEDIA_TYPES.get(kind)
    if (allowed is not None and base not in allowed) or (kind == "document" and base in BLOCKED_DOCUMENT_TYPES):
        raise Invalid.field("media.mimetype", N_f("%(base)s cannot be sent as %(kind)s.", base=base, kind=kind))
    caption = _clean_text(media.get("caption"), "media.caption", CAPTION_MAX)
    if caption is not None and kind == "audio":
        raise Invalid.field("media.caption", N_("Voice messages have no caption."))

    file: dict[str, Any] = {"mimetype": mimetype}
    stored: dict[str, Any] = {"kind": kind, "mimetype": mimetype}
    if filename:
        file["filename"] = stored["filename"] = filename
    if has_url:
        file["url"] = stored["url"] = _check_url(media["url"])
    else:
        if not isinstance(media["data"], str):
            raise Invalid.field("media.data", N_("The file must be base64 encoded."))
        content = _decode(media["data"], current_app.config["MEDIA_MAX_BYTES"])
        if kind == "image" and _sniff_image(content) != base:
            raise Invalid.field("media.mimetype", N_f("The file is not a %(base)s image.", base=base))
        file["data"] = base64.b64encode(content).decode("ascii")
        stored["size"] = len(content)
        stored["sha256"] = hashlib.sha256(content).hexdigest()
    if caption is not None:
        stored["caption"] = caption
    return kind, file, stored, caption


# Names the portal itself writes into a message's metadata (an edit's first text, a forward's original, group
# receipts): a sender may not set them.
PORTAL_METADATA_NAMES = frozenset({"original_body", "forwarded_from", "receipts"})


def _clean_metadata(metadata: Any) -> dict[str, str | int | float | bool]:
    """The sender's metadata as given: each value keeps its JSON type (text, number, true/false)."""
    if metadata is None:
        return {}
    if (
        not isinstance(metadata, dict)
        or len(metadata) > METADATA_MAX_ENTRIES
        or not all(
            isinstance(k, str)
            and 0 < len(k) <= METADATA_NAME_MAX
            and isinstance(v, (str, int, float, bool))
            and len(str(v)) <= METADATA_VALUE_MAX
            for k, v in metadata.items()
        )
    ):
        raise Invalid.field(
            "metadata",
            N_f(
                "Metadata must map at most %(METADATA_MAX_ENTRIES)s names to short values.",
                METADATA_MAX_ENTRIES=METADATA_MAX_ENTRIES,
            ),
        )
    taken = sorted(PORTAL_METADATA_NAMES.intersection(metadata))
    if taken:
        raise Invalid.field(
            "metadata", N_f("The portal writes %(names)s itself; choose another name.", names=", ".join(taken))
        )
    return dict(metadata)
