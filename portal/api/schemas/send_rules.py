"""The send rules of the messages service (portal.services.messages.validation), stated in the OpenAPI document
as JSON Schema conditions on a send's `media` and `text`: which mimetypes each kind takes, which extension names
a file's type when no mimetype is given, which bytes an inline image starts with, no caption on a voice message,
and a media message's text being its caption (as long as one, given once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic.json_schema import JsonDict, JsonValue

from portal.api.schemas.common import BLANK, NOT_BLANK, WS
from portal.services.messages.validation import (
    BLOCKED_DOCUMENT_TYPES,
    CAPTION_MAX,
    IMAGE_MAGIC,
    MEDIA_EXTENSIONS,
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


def _inline_image_rules() -> list[JsonValue]:
    """An inline image's bytes start as its mimetype says (the server sniffs them)."""
    rules: list[JsonValue] = []
    for mimetype in sorted(MEDIA_TYPES["image"]):
        starts = [(magic, wild) for magic, wild, kind in IMAGE_MAGIC if kind == mimetype]
        rules.append(
            {
                "if": {
                    "required": ["type", "data", "mimetype"],
                    "properties": {
                        "type": {"const": "image"},
                        "data": {"type": "string"},
                        "mimetype": {"type": "string", "pattern": _mimetypes_pattern([mimetype])},
                    },
                },
                "then": {"properties": {"data": {"pattern": "|".join(f"({_base64_prefix(m, w)})" for m, w in starts)}}},
            }
        )
    return rules


def media_rules() -> list[JsonValue]:
    """What each kind takes: its mimetypes (documents: any but programs), a mimetype named by the extension when
    none is given, an inline image's first bytes, and no caption on audio (a voice message)."""
    rules: list[JsonValue] = [
        {
            "if": {
                "required": ["type", "mimetype"],
                "properties": {"type": {"const": kind}, "mimetype": {"type": "string"}},
            },
            "then": {"properties": {"mimetype": {"pattern": _mimetypes_pattern(types)}}},
        }
        for kind, types in sorted(MEDIA_TYPES.items())
    ]
    rules.append(
        {
            "if": {
                "required": ["type", "mimetype"],
                "properties": {"type": {"const": "document"}, "mimetype": {"type": "string"}},
            },
            "then": {"properties": {"mimetype": {"not": {"pattern": _mimetypes_pattern(BLOCKED_DOCUMENT_TYPES)}}}},
        }
    )
    for kind, extensions in sorted(MEDIA_EXTENSIONS.items()):
        # without a mimetype, the extension of the filename (else of the URL's last path segment) names it
        ending = "|".join(_any_case(extension) for extension in sorted(extensions))
        rules.append(
            {
                "if": {"required": ["type"], "properties": {"type": {"const": kind}, "mimetype": {"type": "null"}}},
                "then": {
                    "anyOf": [
                        {
                            "required": ["filename"],
                            "properties": {"filename": {"type": "string", "pattern": rf"\.({ending})[{WS}]*$"}},
                        },
                        {
                            "required": ["url"],
                            "properties": {
                                "filename": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": BLANK}]},
                                "url": {
                                    "type": "string",
                                    "pattern": rf"^[^?#]*://[^/?#]*/([^?#]*/)?[^/?#]*\.({ending})([?#]|$)",
                                },
                            },
                        },
                    ]
                },
            }
        )
    rules.append(
        {
            "if": {"required": ["type"], "properties": {"type": {"const": "audio"}}},
            "then": {"properties": {"caption": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": BLANK}]}}},
        }
    )
    rules += _inline_image_rules()
    return rules


EXTENSIONS_DOC = ", ".join(
    f"{kind} {' '.join('.' + e for e in sorted(extensions))}" for kind, extensions in sorted(MEDIA_EXTENSIONS.items())
)

# A media message's text is its caption: at most CAPTION_MAX characters, none on audio, and not beside a
# media.caption (one caption, given once).
CAPTIONED: JsonDict = {"type": "string", "pattern": NOT_BLANK}
TEXT_RULES: list[JsonValue] = [
    {
        "if": {"required": ["media"], "properties": {"media": {"type": "object"}}},
        "then": {"properties": {"text": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": CAPTION_MAX}]}}},
    },
    {
        "if": {
            "required": ["media"],
            "properties": {
                "media": {"type": "object", "required": ["type"], "properties": {"type": {"const": "audio"}}}
            },
        },
        "then": {"properties": {"text": {"type": "null"}}},
    },
    {
        "if": {
            "required": ["media"],
            "properties": {"media": {"type": "object", "required": ["caption"], "properties": {"caption": CAPTIONED}}},
        },
        "then": {"properties": {"text": {"type": "null"}}},
    },
]
