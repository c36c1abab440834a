"""Failures of the media store, and the one rule every key follows."""

from __future__ import annotations

import re

# Keys are chosen by the portal: path segments of letters, digits, '.', '_' and '-', never '..' and never empty.
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


class StorageUnavailable(OSError):
    """The store could not be reached or refused the request (not: the file is missing, FileNotFoundError)."""


def check_key(key: str) -> str:
    """`key` when it is a well-formed storage key; ValueError otherwise (a portal bug, never user input)."""
    parts = key.split("/") if isinstance(key, str) and len(key) <= 512 else [""]
    if not all(_SEGMENT.match(part) and ".." not in part for part in parts):
        raise ValueError(f"not a storage key: {key!r}")
    return key
