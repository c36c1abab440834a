"""Identifiers shaped like the ones WAHA and WhatsApp produce."""

from __future__ import annotations

import base64
import os
import secrets
import string
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_BASE36 = string.digits + string.ascii_lowercase


def ulid() -> str:
    """A lowercase ULID: 48-bit millisecond time plus 80 random bits, 26 Crockford characters."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def event_id() -> str:
    """Envelope id of a webhook event."""
    return "evt_" + ulid()


def session_name() -> str:
    """Name given to a session created without one."""
    return "session_" + ulid()


def _base36(number: int) -> str:
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = _BASE36[rest] + out
    return out or "0"


def uniqid() -> str:
    """An 18-character id like the npm `uniqid` package makes (time-based, base36)."""
    head = _base36(int(time.time() * 1000))
    tail = "".join(secrets.choice(_BASE36) for _ in range(18 - len(head)))
    return tail[:6] + head + tail[6:]


def wa_message_id() -> str:
    """The WhatsApp part of a message id (20 upper-case hex characters)."""
    return "3EB0" + secrets.token_hex(8).upper()


def qr_value() -> str:
    """A string shaped like the value WhatsApp encodes in its pairing QR code."""

    def part(n: int) -> str:
        return base64.b64encode(os.urandom(n)).decode()

    return f"2@{part(48)},{part(32)},{part(32)},{part(32)}"


def pairing_code() -> str:
    """An 8-character pairing code formatted ABCD-EFGH."""
    alphabet = string.ascii_uppercase + string.digits
    code = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"{code[:4]}-{code[4:]}"
