"""What a WAHA failure means to the portal's caller: one table from the WAHA client's typed errors to the
ServiceErrors every service raises (sessions, messages, and the services built on them)."""

from __future__ import annotations

import logging

from portal.i18n import N_, N_f
from portal.models import WahaSession
from portal.services import upstream
from portal.services.errors import Conflict, Invalid, NotFound, ServiceError, Upstream
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)


def map_waha_error(exc: waha_errors.WahaError, session: WahaSession | None = None) -> ServiceError:
    """The ServiceError a WAHA failure means to the portal's caller (one table for every service)."""
    if isinstance(exc, waha_errors.WahaUnavailable):
        # The client's text names WAHA's address: operators read it in the log, tenants get the reason code.
        upstream.log_failure("WAHA unavailable", exc)
        # An open circuit knows when it lets calls through again; otherwise a short pause.
        retry_after = exc.retry_after or (1 if isinstance(exc, waha_errors.WahaPoolExhausted) else 5)
        return Upstream(
            N_f("%(describe)s Try again in a few seconds.", describe=upstream.describe(exc)),
            retry_after=retry_after,
            details={"reason": upstream.reason(exc)},
        )
    if isinstance(exc, waha_errors.WahaUnauthorized):
        # Our own API key was refused: the portal is misconfigured, nothing the caller can fix.
        log.error("WAHA refused the portal's API key: %s", exc)
        return Upstream(
            N_("The WAHA server refused the portal's credentials; an operator has to fix its API key."), retry_after=60
        )
    if isinstance(exc, waha_errors.WahaSessionNotReady):
        status = exc.session_status or (session.status if session is not None else None)
        return Conflict(
            N_f(
                "The session is %(status)s; it must be %(value)s for this.",
                status=status or "not ready",
                value=" or ".join(exc.expected) or "WORKING",
            ),
            code="session_not_ready",
            details={"status": status, "expected": exc.expected},
        )
    if isinstance(exc, waha_errors.WahaNotFound):
        if session is not None:
            return Conflict(
                N_("The session does not exist on its WAHA server; start it to re-create it."),
                code="session_missing_on_waha",
                details={"status": session.status},
            )
        return NotFound(N_("WAHA does not know this item."), code="not_found")
    if isinstance(exc, waha_errors.WahaAlreadyExists):
        return Conflict(N_("A session with this name already exists on the WAHA server."), code="session_exists")
    if isinstance(exc, waha_errors.WahaNotImplemented):
        return Invalid(
            N_f("The WAHA server does not support this: %(message)s", message=exc.message), code="not_supported"
        )
    if isinstance(exc, waha_errors.WahaValidationError):
        return Invalid(
            "WAHA refused the request: " + "; ".join(exc.messages),
            details={"fields": [{"field": "waha", "message": m} for m in exc.messages]},
        )
    if isinstance(exc, waha_errors.WahaNewContactLimited):
        until = session.new_contacts_blocked_until if session is not None else None
        return Conflict(
            "WhatsApp refused this message to a new contact: "
            + (
                "a reach-out timelock is active on the number"
                if exc.reason == "timelock"
                else "the number's new-chat cap is reached"
            )
            + ". Replies to existing chats still go out.",
            code="new_contact_limited",
            details={"reason": exc.reason, "whatsappCode": exc.wa_code, "until": until.isoformat() if until else None},
        )
    if isinstance(exc, waha_errors.WahaMediaTooLarge):
        return Invalid(exc.message, code="media_too_large")
    upstream.log_failure("unexpected WAHA error", exc)
    return Upstream(
        N_f("%(describe)s Try again in a few seconds.", describe=upstream.describe(exc)),
        details={"status": exc.status, "reason": upstream.reason(exc)},
    )
