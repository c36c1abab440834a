"""What a WAHA failure means, told two ways: in full to operators (logs), without internals to tenants.

WAHA's addresses are the operator's business: the client's error texts name them ("cannot reach WAHA at
http://10.0.0.5:3000"), so nothing built from those texts may reach a tenant. Tenants get a stable reason
(`details.reason` of a 503) and a sentence; the log line keeps the address.

It also answers the question a send must ask of every failure: could WhatsApp have the message?
"""

from __future__ import annotations

import logging

from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

# reason -> what a tenant reads; no address, host name or WAHA body text in any of them
REASONS = {
    "timeout": "WAHA did not answer in time.",
    "unreachable": "WAHA could not be reached.",
    "circuit_open": "WAHA failed repeatedly, so calls to it are paused for a moment.",
    "busy": "Every connection to WAHA is busy.",
    "unavailable": "WAHA answered that it is unavailable.",
    "refused": "WAHA refused the request.",
    "failed": "WAHA failed to handle the request.",
}

UNSENT = "unsent"
UNKNOWN = "unknown"


def reason(exc: waha_errors.WahaError) -> str:
    """The stable reason code of a WAHA failure (a key of REASONS)."""
    if isinstance(exc, waha_errors.WahaCircuitOpen):
        return "circuit_open"
    if isinstance(exc, waha_errors.WahaPoolExhausted):
        return "busy"
    if isinstance(exc, waha_errors.WahaTimeout):
        return "timeout"
    if isinstance(exc, waha_errors.WahaUnavailable):
        return "unreachable" if exc.status is None else "unavailable"
    if exc.status is not None and 400 <= exc.status < 500:
        return "refused"
    return "failed"


def describe(exc: waha_errors.WahaError) -> str:
    """The sentence a tenant may read about a WAHA failure."""
    return REASONS[reason(exc)]


def send_outcome(exc: waha_errors.WahaError) -> str:
    """UNSENT when the failed send provably never reached WhatsApp, UNKNOWN when it may have.

    Provably not sent: no connection was ever opened (refused, unresolvable, connect timeout), the breaker or
    the connection pool stopped the call before any byte left, WAHA answered 503 (it did not take the request)
    or refused it with a 4xx or 501. Anything else (a read timeout, a connection lost after the request went
    out, a 500/502/504, an unreadable 2xx) leaves the outcome unknown.
    """
    if isinstance(exc, (waha_errors.WahaCircuitOpen, waha_errors.WahaPoolExhausted, waha_errors.WahaNewContactLimited)):
        return UNSENT  # (WhatsApp's own refusal of a message to a new contact: it never took it)
    if isinstance(exc, waha_errors.WahaUnavailable):
        if exc.never_sent or exc.status == 503:
            return UNSENT
        return UNKNOWN
    if exc.status is not None and (400 <= exc.status < 500 or exc.status == 501):
        return UNSENT
    return UNKNOWN


def log_failure(what: str, exc: waha_errors.WahaError, **context: object) -> None:
    """One operator log line with everything the tenant is not shown (WAHA's address, its body excerpt)."""
    extra = " ".join(f"{k}={v}" for k, v in context.items())
    log.warning(
        "%s: %s [%s]%s%s",
        what,
        exc,
        type(exc).__name__,
        f" {extra}" if extra else "",
        f" body={exc.body_excerpt!r}" if exc.body_excerpt else "",
    )
