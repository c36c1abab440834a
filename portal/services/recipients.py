"""Recipients and phone numbers: the one rule for turning what people type into international digits and WAHA
chat ids."""

from __future__ import annotations

from typing import Any

import phonenumbers

from portal.services.errors import Invalid


def phone_digits(phone: Any, field: str = "phone") -> str:
    """International digits of a phone number ("+49 170 1234567" -> "491701234567"); Invalid(field) when bad."""
    if not isinstance(phone, str) or not phone.strip():
        raise Invalid.field(field, "A phone number is required.")
    raw = phone.strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    elif not raw.startswith("+"):
        raw = "+" + raw
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise Invalid.field(field, "Not a valid phone number; write it with the country code, e.g. +49 170 1234567."
                            ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise Invalid.field(field, "Not a valid phone number; write it with the country code, e.g. +49 170 1234567.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164).lstrip("+")
