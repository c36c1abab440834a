"""Typed errors for WAHA calls, built from either of WAHA's two error body shapes.

WAHA answers errors as NestJS bodies (``{"message", "error", "statusCode"}``, where ``message`` may be a
list) or as its own session-status bodies (``{"error", "session", "status", "expected"}``), and missing media
files come back as ``{"error": {"code", "key", "message"}}``. ``from_response`` reads whichever is there.
"""

from __future__ import annotations

import json
import re
from typing import Any

BODY_EXCERPT_CHARS = 300


class WahaError(Exception):
    """Any failed WAHA call: HTTP status (None when no response arrived), body excerpt and a readable message."""

    def __init__(self, status: int | None, body_excerpt: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body_excerpt = body_excerpt[:BODY_EXCERPT_CHARS]
        self.message = message

    def __str__(self) -> str:
        prefix = f"WAHA {self.status}: " if self.status is not None else "WAHA: "
        return prefix + self.message


class WahaUnavailable(WahaError):
    """WAHA cannot be reached or said it is down (connection refused, 502/503/504, circuit open)."""

    # True when the request certainly never reached WAHA (no connection could be opened), so even a
    # call that WAHA cannot deduplicate may be tried again.
    never_sent = False
    # Whole seconds until the server's circuit breaker lets calls through again, when this failure left it
    # open (None: the breaker is closed, the caller picks its own pause).
    retry_after: int | None = None


class WahaTimeout(WahaUnavailable):
    """WAHA did not answer (connect or read) within the configured timeout."""


class WahaCircuitOpen(WahaUnavailable):
    """Recent calls to this WAHA server kept failing, so calls fail at once until the breaker's reset time."""


class WahaPoolExhausted(WahaUnavailable):
    """Every pooled connection to WAHA stayed busy for longer than the pool acquire timeout."""


class WahaUnauthorized(WahaError):
    """WAHA refused our API key (401), or the key is not allowed to do this (403)."""


class WahaNotFound(WahaError):
    """The session, file or route does not exist (404, or the 422 "Session ... does not exist" variant)."""


class WahaAlreadyExists(WahaError):
    """Create was called for a session name that WAHA already has (422)."""


class WahaAlreadyStarted(WahaError):
    """Core images before 2026.6.1 answer 422 when starting a session that is already running."""


class WahaSessionNotReady(WahaError):
    """The session exists but is not in the status the call needs (422), e.g. sending while SCAN_QR_CODE."""

    def __init__(
        self,
        status: int | None,
        body_excerpt: str,
        message: str,
        *,
        session_status: str | None = None,
        expected: list[str] | None = None,
    ) -> None:
        super().__init__(status, body_excerpt, message)
        self.session_status = session_status
        self.expected = list(expected or [])


class WahaNewContactLimited(WahaError):
    """WhatsApp refused a send to a new contact: error 463 (a reach-out timelock is active on the account) or 475
    (the account's new-chat messages are capped for this cycle). The session is healthy and stays WORKING; only
    messages to new contacts must wait. WhatsApp never took the message."""

    def __init__(self, status: int | None, body_excerpt: str, message: str, *, wa_code: int) -> None:
        super().__init__(status, body_excerpt, message)
        self.wa_code = wa_code
        self.reason = "timelock" if wa_code == 463 else "capped"


# WhatsApp's own refusal codes as WAHA passes them on in the thrown error's text ("... error 463 ...").
_NEW_CONTACT_CODES = re.compile(r"(?<!\d)(463|475)(?!\d)")


class WahaValidationError(WahaError):
    """WAHA rejected the request body or query (400); ``messages`` lists each complaint."""

    def __init__(self, status: int | None, body_excerpt: str, message: str, *, messages: list[str] | None = None):
        super().__init__(status, body_excerpt, message)
        self.messages = list(messages or [message])


class WahaMediaTooLarge(WahaError):
    """A media download was larger than the caller's size cap."""


class WahaNotImplemented(WahaError):
    """The WAHA engine does not implement this method (501, or 422 on 2024 images)."""


class WahaNotSupported(WahaNotImplemented):
    """The WAHA image is a Core build that refuses this (only the 'default' session, or a Plus-only feature)."""


def _excerpt(text: str) -> str:
    return text[:BODY_EXCERPT_CHARS]


def _message_from(body: Any) -> tuple[str, list[str]]:
    """Return (one-line message, list of messages) from any WAHA error body."""
    if not isinstance(body, dict):
        return "", []
    raw = body.get("message")
    if raw is None:
        raw = body.get("error")
    if raw is None and isinstance(body.get("exception"), dict):
        # The 500 shape keeps the thrown error under "exception".
        raw = body["exception"].get("message")
    if isinstance(raw, dict):
        # FILE_NOT_FOUND shape: {"error": {"code", "key", "message", "details"}}
        raw = raw.get("message") or raw.get("key")
    if isinstance(raw, list):
        messages = [str(item) for item in raw]
        return "; ".join(messages), messages
    if raw is None:
        return "", []
    return str(raw), [str(raw)]


def from_response(status: int, text: str) -> WahaError:
    """Build the typed error for a non-2xx WAHA answer from its status code and body text."""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    message, messages = _message_from(body)
    message = message or (text.strip()[:200] if text else "") or f"HTTP {status}"
    excerpt = _excerpt(text or "")
    lowered = message.lower()

    if status in (401, 403):
        return WahaUnauthorized(status, excerpt, message)
    if status == 404:
        return WahaNotFound(status, excerpt, message)
    if status == 400:
        return WahaValidationError(status, excerpt, message, messages=messages)
    if status == 422:
        if isinstance(body, dict) and "expected" in body:
            expected = body.get("expected")
            return WahaSessionNotReady(
                status,
                excerpt,
                message,
                session_status=body.get("status"),
                expected=expected if isinstance(expected, list) else [str(expected)],
            )
        if "does not exist" in lowered:
            return WahaNotFound(status, excerpt, message)
        if "already exists" in lowered:
            return WahaAlreadyExists(status, excerpt, message)
        if "already started" in lowered:
            return WahaAlreadyStarted(status, excerpt, message)
        if "only in plus" in lowered or "only 'default' session" in lowered:
            return WahaNotSupported(status, excerpt, message)
        if "not implemented" in lowered:
            return WahaNotImplemented(status, excerpt, message)
        return WahaError(status, excerpt, message)
    if status == 501:
        return WahaNotImplemented(status, excerpt, message)
    if status == 500 and (code := _NEW_CONTACT_CODES.search(message)) is not None:
        return WahaNewContactLimited(status, excerpt, message, wa_code=int(code.group(1)))
    if status in (502, 503, 504):
        return WahaUnavailable(status, excerpt, message)
    return WahaError(status, excerpt, message)
