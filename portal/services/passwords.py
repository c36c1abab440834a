"""The password policy, applied wherever a password is chosen: sign-up by invitation, reset, change and the
`users create` command.

At least MIN_PASSWORD characters, and not easy to guess: zxcvbn (a maintained estimator that ships a list of
30,000 common passwords, plus dictionaries, keyboard patterns, repeats and sequences) must rate it at least
MIN_SCORE out of 4. A password made of the person's own address (the address, or its name and domain together) is
refused.
"""

from __future__ import annotations

import functools

from portal.i18n import N_, N_f
from portal.services.errors import Invalid

MIN_PASSWORD = 12
MAX_PASSWORD = 200
MIN_SCORE = 3  # zxcvbn: 3 = "safely unguessable: moderate protection from offline slow-hash scenario"
_CHECKED_CHARS = 100  # zxcvbn slows down on very long input; the first 100 characters decide


@functools.cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # imported on first use: it is a large module

    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password_policy(password: str, *, email: str = "") -> None:
    """Refuse a password that is too short, too long, a common password or otherwise easy to guess
    (Invalid on the `password` field, code validation_error)."""
    password = password or ""
    if len(password) < MIN_PASSWORD:
        raise Invalid.field(
            "password", N_f("Password must be at least %(MIN_PASSWORD)s characters long.", MIN_PASSWORD=MIN_PASSWORD)
        )
    if len(password) > MAX_PASSWORD:
        raise Invalid.field(
            "password", N_f("Password must be at most %(MAX_PASSWORD)s characters long.", MAX_PASSWORD=MAX_PASSWORD)
        )
    if password.lower() in _common():
        raise Invalid.field("password", N_("This is one of the most common passwords. Choose another one."))
    local, _, domain = email.lower().partition("@")
    lowered = password.lower()
    if email and (email.lower() in lowered or (local in lowered and domain.split(".")[0] in lowered)):
        raise Invalid.field("password", N_("The password must not be made of your e-mail address."))
    from zxcvbn import zxcvbn

    hints = [email.lower(), local, *email.lower().replace("@", " ").replace(".", " ").split()]
    result = zxcvbn(password[:_CHECKED_CHARS], user_inputs=hints)
    if result["score"] < MIN_SCORE:
        warning = (result.get("feedback") or {}).get("warning") or ""
        reason = f" ({warning.rstrip('.')})" if warning else ""
        raise Invalid.field(
            "password",
            N_f(
                "This password is too easy to guess%(reason)s. "
                "A few unrelated words, or a longer phrase, make a strong one.",
                reason=reason,
            ),
        )
