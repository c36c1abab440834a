"""The send rules of the messages service (portal.services.messages.validation), stated in the OpenAPI document
as JSON Schema conditions on a send's `media` and `text`: which mimetypes each kind takes, which extension names
a file's type when no mimetype is given, which bytes an inline image starts with, no caption on a voice message,
and a media message's text being its caption (as long as one, given once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic.json_schema import JsonDict, JsonValue

from portal.api.schemas.common import BLANK, WS
from portal.services.messages.validation import (
    BLOCKED_DOCUMENT_TYPES,
    CAPTION_MAX,
    IMAGE_MAGIC,
    MEDIA_EXTENSIONS,
    MEDIA_KINDS,
    MEDIA_TYPES,
)

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _any_case(text: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in text)


def _mimetypes_pattern(types: Iterable[str]) -> str:
    """A mimetype (any case, parameters allowed) whose type/subtype is one of `types`."""
    return rf"^[{WS}]*({'|'.join(_any_case(t) for t in sorted(types))})[{WS}]*(;[^\u0000]*)?$"


def _base64_prefix(magic: bytes, anything: Iterable[int] = ()) -> str:
    """A pattern for base64 text whose bytes start with `magic` (the bytes at positions `anything` may be any)."""
    free = set(anything)
    bits = [
        None if i // 8 in free else (magic[i // 8] >> (7 - i % 8)) & 1 for i in range(len(magic) * 8)
    ]  # each bit of the magic, None where it may be either
    pattern = "^"
    for start in range(0, len(bits), 6):  # one base64 character per 6 bits; bits past the magic are free
        known = bits[start : start + 6]
        chars = [
            c
            for value, c in enumerate(_B64)
            if all(bit is None or bit == (value >> (5 - k)) & 1 for k, bit in enumerate(known))
        ]
        if len(chars) == len(_B64):
            pattern += "[A-Za-z0-9+/]"
        else:
            pattern += re.escape(chars[0]) if len(chars) == 1 else "[" + "".join(re.escape(c) for c in chars) + "]"
    return pattern


_NONE: JsonDict = {"type": "null"}  # under "properties": the field absent or null
_BLANK_OR_NONE: JsonDict = {"anyOf": [_NONE, {"type": "string", "pattern": BLANK}]}


def _named_by_extension(kind: str) -> JsonDict:
    """No mimetype: the extension of the filename (else of the URL's last path segment) names one of the kind."""
    ending = "|".join(_any_case(extension) for extension in sorted(MEDIA_EXTENSIONS[kind]))
    return {
        "properties": {"mimetype": _NONE},
        "anyOf": [
            {
                "required": ["filename"],
                "properties": {"filename": {"type": "string", "pattern": rf"\.({ending})[{WS}]*$"}},
            },
            {
                "required": ["url"],
                "properties": {
                    "filename": _BLANK_OR_NONE,
                    "url": {"type": "string", "pattern": rf"^[^?#]*://[^/?#]*/([^?#]*/)?[^/?#]*\.({ending})([?#]|$)"},
                },
            },
        ],
    }


def _kind(kind: str) -> JsonDict:
    """What a file of one kind takes: a mimetype of the kind (by URL or inline) or none, named by its extension;
    an inline image starts with the bytes its mimetype says (the server sniffs them)."""
    of_kind: JsonDict = {"type": "string", "pattern": _mimetypes_pattern(MEDIA_TYPES[kind])}
    if kind != "image":
        typed: list[JsonValue] = [{"required": ["mimetype"], "properties": {"mimetype": of_kind}}]
    else:
        typed = [{"required": ["mimetype"], "properties": {"mimetype": of_kind, "data": _NONE}}]  # by URL
        for mimetype in sorted(MEDIA_TYPES["image"]):
            starts = [
                _base64_prefix(magic, anything) for magic, anything, sniffed in IMAGE_MAGIC if sniffed == mimetype
            ]
            typed.append(
                {
                    "required": ["data", "mimetype"],
                    "properties": {
                        "mimetype": {"type": "string", "pattern": _mimetypes_pattern([mimetype])},
                        "data": {"type": "string", "pattern": "|".join(f"({start})" for start in starts)},
                    },
                }
            )
    schema: JsonDict = {"properties": {"type": {"const": kind}}, "anyOf": [*typed, _named_by_extension(kind)]}
    if kind == "audio":  # a voice message has no caption
        schema["properties"] = {"type": {"const": kind}, "caption": _BLANK_OR_NONE}
    return schema


def media_kinds() -> list[JsonValue]:
    """One alternative per kind (documents: any mimetype but a program's, or none)."""
    document: JsonDict = {
        "properties": {
            "type": {"const": "document"},
            "mimetype": {"anyOf": [_NONE, {"not": {"pattern": _mimetypes_pattern(BLOCKED_DOCUMENT_TYPES)}}]},
        }
    }
    return [*(_kind(kind) for kind in sorted(MEDIA_TYPES)), document]


EXTENSIONS_DOC = ", ".join(
    f"{kind} {' '.join('.' + e for e in sorted(extensions))}" for kind, extensions in sorted(MEDIA_EXTENSIONS.items())
)

# A media message's text is its caption: without media any text; with media no text, or one of at most
# CAPTION_MAX characters, not on audio and not beside a media.caption (one caption, given once).
TEXT_WITH_MEDIA: list[JsonValue] = [
    {"properties": {"media": _NONE}},
    {"properties": {"text": _NONE}},
    {
        "properties": {
            "text": {"maxLength": CAPTION_MAX},
            "media": {
                "properties": {
                    "type": {"enum": [kind for kind in MEDIA_KINDS if kind != "audio"]},
                    "caption": _BLANK_OR_NONE,
                }
            },
        }
    },
]
