"""Media types by kind, as WhatsApp takes them: what a send may carry, and what a stored file is shown under."""

from __future__ import annotations

import re

_MIMETYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")

# What WhatsApp accepts per kind of message (a document may be any type except programs: services.messages).
SENDABLE_TYPES: dict[str, frozenset[str]] = {
    "image": frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"}),
    "video": frozenset({"video/mp4", "video/3gpp", "video/quicktime", "video/webm"}),
    "audio": frozenset(
        {
            "audio/ogg",
            "audio/mpeg",
            "audio/mp4",
            "audio/aac",
            "audio/amr",
            "audio/wav",
            "audio/x-wav",
            "audio/webm",
            "audio/opus",
        }
    ),
}

# Stored files shown in the browser rather than downloaded: the sendable images, videos and audio, except WAV under
# its old name (browsers download it anyway). None of them is a document a browser would run scripts in.
INLINE_TYPES = frozenset(
    SENDABLE_TYPES["image"] | SENDABLE_TYPES["video"] | (SENDABLE_TYPES["audio"] - {"audio/x-wav"})
)


def base_type(mimetype: str) -> str:
    """The type/subtype of a mimetype, lower case, without its parameters."""
    return mimetype.split(";", 1)[0].strip().lower()


def is_media_type(mimetype: str) -> bool:
    """Whether `mimetype` names one type (type/subtype, parameters allowed), not a range such as */* or image/*."""
    return bool(_MIMETYPE_RE.match(base_type(mimetype)))
