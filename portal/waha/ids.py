"""WhatsApp id helpers: chat ids, message ids from WAHA send responses, pre-generated message ids.

These only spell ids the way WAHA expects them (and refuse what cannot be one); whether a number a person typed
is a valid phone number is decided before, by the portal's one rule in `portal.services.recipients`.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

# Ids that already name a chat kind WAHA understands are passed through untouched.
_KEPT_SUFFIXES = ("@c.us", "@g.us", "@lid", "@newsletter", "@broadcast")
_E164_MAX_DIGITS = 15


def to_phone_digits(phone: str) -> str:
    """Reduce a phone number written by a person to international digits, e.g. "+49 170 1234567" -> "491701234567".

    A leading "00" is read as the international prefix. A number that still starts with "0" is a national
    number without country code, which cannot be turned into a WhatsApp id, so it is refused.
    """
    digits = re.sub(r"\D", "", phone or "")
    if digits.startswith("00"):
        digits = digits[2:]
    if not digits:
        raise ValueError(f"not a phone number: {phone!r}")
    if digits.startswith("0"):
        raise ValueError(f"phone number needs a country code: {phone!r}")
    if len(digits) > _E164_MAX_DIGITS:
        raise ValueError(f"phone number is too long: {phone!r}")
    return digits


def to_cus(jid: str) -> str:
    """Turn a raw WhatsApp jid ("4917...:12@s.whatsapp.net") into WAHA's chat id form ("4917...@c.us")."""
    user, _, server = jid.partition("@")
    if server == "s.whatsapp.net":
        # Drop the device part ("number:device") that raw jids carry.
        return user.split(":", 1)[0] + "@c.us"
    return jid


def to_chat_id(phone_or_id: str) -> str:
    """Return the WAHA chat id for a phone number or an existing chat id.

    "+49 170 1234567" -> "491701234567@c.us"; ids with "@" (c.us, g.us, lid, newsletter) are kept as given;
    "@s.whatsapp.net" jids become "@c.us".
    """
    value = (phone_or_id or "").strip()
    if "@" in value:
        if value.endswith("@s.whatsapp.net"):
            return to_cus(value)
        return value
    return to_phone_digits(value) + "@c.us"


def new_message_id() -> str:
    """Return a fresh WhatsApp-like message id ("3EB0" + 16 uppercase hex) for WAHA to send under and dedupe on."""
    return "3EB0" + secrets.token_hex(8).upper()


def normalize_message_id(response: Any) -> str | None:
    """Return the one message id a WAHA send response stands for, whatever the engine, or None if it has none.

    GOWS sends ``id`` as a string, WEBJS an object with ``_serialized``, NOWEB a Baileys record whose
    ``key`` gives ``"true_" + chat + "_" + id``; this is the id later ``message.ack`` events carry.
    """
    if not isinstance(response, dict):
        return None
    raw_id = response.get("id")
    if isinstance(raw_id, str) and raw_id:
        return raw_id
    if isinstance(raw_id, dict) and isinstance(raw_id.get("_serialized"), str):
        return raw_id["_serialized"]
    key = response.get("key")
    if isinstance(key, dict) and key.get("remoteJid") and key.get("id"):
        from_me = "true" if key.get("fromMe", True) else "false"
        return f"{from_me}_{to_cus(key['remoteJid'])}_{key['id']}"
    return None
