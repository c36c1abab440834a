"""Recipients and phone numbers: the one rule for what people type for a chat.

A phone number is read in international form ("+49 170 1234567", "0049 170 1234567" or "49 170 1234567"; a
leading "00" is the international prefix, a missing "+" is added) and must be a valid number of its country
(checked with `phonenumbers`); it becomes its E.164 digits ("491701234567") and, as a recipient, the chat id
"<digits>@c.us". A chat id is kept as given when it has one of the kinds WAHA accepts (@c.us, @g.us, @lid).

The services use `phone_digits` and `normalize_recipient` (Invalid on a bad value); the API's request schemas use
`parse_phone` and `CHAT_ID_PATTERNS` for the same checks (and state the shape of a number as a pattern). The WAHA
client (`portal.waha.ids`) only formats ids the way WAHA spells them; it does not decide what is valid.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import phonenumbers

from portal.i18n import N_, N_f
from portal.services.errors import Invalid

# The chat id kinds WAHA accepts as a recipient: a person (@c.us), a group (@g.us), a linked id (@lid).
CHAT_ID_PATTERNS = (
    r"[1-9][0-9]{5,19}@c\.us",
    r"[0-9]{5,25}(-[0-9]{5,15})?@g\.us",
    r"[0-9]{5,25}@lid",
)
CHAT_ID_RES = tuple(re.compile(f"^{pattern}$") for pattern in CHAT_ID_PATTERNS)

PHONE_HINT = "write it with the country code, e.g. +49 170 1234567"


def parse_phone(phone: str) -> phonenumbers.PhoneNumber | None:
    """The number `phone` names in international form, or None when it is not a valid number of its country.
    Any whitespace may part its digits (a tab, the narrow no-break space of French numbers), as the API's document
    says: libphonenumber itself reads only some of them."""
    raw = "".join(" " if ch.isspace() else ch for ch in phone).strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    elif not raw.startswith("+"):
        raw = "+" + raw
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None
    return parsed if phonenumbers.is_valid_number(parsed) else None


@functools.lru_cache(maxsize=4096)
def is_valid_phone(phone: str) -> bool:
    """`parse_phone(phone)` finds a valid number; kept per spelling, as integrators send to the same numbers."""
    return parse_phone(phone) is not None


def phone_digits(phone: Any, field: str = "phone") -> str:
    """International digits of a phone number ("+49 170 1234567" -> "491701234567"); Invalid(field) when bad."""
    if not isinstance(phone, str) or not phone.strip():
        raise Invalid.field(field, N_("A phone number is required."))
    parsed = parse_phone(phone)
    if parsed is None:
        raise Invalid.field(field, N_f("Not a valid phone number; %(PHONE_HINT)s.", PHONE_HINT=PHONE_HINT))
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def normalize_recipient(to: Any) -> str:
    """The WAHA chat id for `to`: a phone number in any usual spelling becomes "<E.164 digits>@c.us";
    ids ending in @c.us, @g.us or @lid are kept as given. Invalid(field "to") otherwise."""
    if not isinstance(to, str) or not to.strip():
        raise Invalid.field("to", N_("A recipient is required."))
    value = to.strip()
    if "@" in value:
        if any(pattern.match(value) for pattern in CHAT_ID_RES):
            return value
        raise Invalid.field(
            "to", N_("Not a valid chat id; use a phone number or an id ending in @c.us, @g.us or @lid.")
        )
    return _phone_chat_id(value)


@functools.lru_cache(maxsize=4096)
def _phone_chat_id(phone: str) -> str:
    # Integrators send to the same numbers again and again; parsing one costs more than the rest of the checks.
    # Invalid numbers raise and so are not kept.
    return phone_digits(phone, "to") + "@c.us"


def is_person(chat_id: str) -> bool:
    """A chat with one person (their number, or a linked id), as opposed to a group, a channel or a broadcast."""
    return chat_id.endswith("@c.us") or chat_id.endswith("@lid")


def phone_of(chat_id: str) -> str | None:
    """The number of a person's chat id ("491701234567@c.us" -> "491701234567"); None for other ids."""
    number = chat_id.removesuffix("@c.us")
    return number if chat_id.endswith("@c.us") and number.isascii() and number.isdecimal() else None
