"""Request ids and logging: every response and log line carries the request id, tenant and session where known,
and secrets that slip into a log line are masked before it is written.

Outside a request, ``log_context(...)`` adds fields to every line written inside the block: each job runs in
``log_context(job=<dotted path>, job_id=<RQ job id>)`` (the ``portal.jobs.job`` decorator), so its lines carry
both, and any other work may add ``tenant`` or ``session`` the same way.

Message bodies are never logged at INFO: the access log has method, path (no query string), status and time
only. Paths whose URL rule carries a credential (reset and invitation tokens, show-once keys) are masked in
every line, whoever writes it (the access log, Werkzeug, error reports).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from flask import Flask, Response, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "portal_log_context", default=MappingProxyType({})
)


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add fields (request_id, tenant, session, job...) to every log line written inside the block."""
    token = _context.set({**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def _request_session() -> str | None:
    explicit = getattr(g, "log_session", None)
    if explicit:
        return str(explicit)
    view_args = request.view_args or {}
    if view_args.get("session_id"):
        return str(view_args["session_id"])
    if request.path.startswith("/webhooks/"):
        return request.args.get("session") or None
    return None


class ContextFilter(logging.Filter):
    """Adds request_id, tenant and session (when known) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        extra = _context.get()
        if has_request_context():
            record.request_id = getattr(g, "request_id", "-")
            tenant = getattr(g, "tenant", None)
            record.tenant = tenant.slug if tenant is not None else extra.get("tenant", "-")
            record.session = _request_session() or extra.get("session", "-")
        else:
            record.request_id = getattr(record, "request_id", extra.get("request_id", "-"))
            record.tenant = getattr(record, "tenant", extra.get("tenant", "-"))
            record.session = getattr(record, "session", extra.get("session", "-"))
        for key, value in extra.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


# ---------------------------------------------------------------------- redaction

REDACTED = "[REDACTED]"
_PATTERNS = (
    # Authorization: Bearer <anything>
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + REDACTED),
    # key=value / "key": "value" / key: value for names that hold secrets
    (
        re.compile(r"""(?ix)
        (["']?\b(?:x[-_]api[-_]key|api[-_]?key|apikey|authorization|access[-_]?token|refresh[-_]?token|token|
                  secret|client[-_]secret|password|passwd|hmac[-_]?key|webhook[-_]?secret)\b["']?
         \s*[:=]\s*["']?(?:(?:bearer|basic)\s+)?)
        (?!\[REDACTED\]|(?:bearer|basic)\s+\[REDACTED\])([^\s"'&,;}]{3,})"""),
        r"\1" + REDACTED,
    ),
    # portal API tokens (keep the public prefix, it identifies the token without opening it)
    (re.compile(r"\b(wp_[0-9a-f]{12}_)[A-Za-z0-9_-]{8,}"), r"\1" + REDACTED),
    # Standard Webhooks secrets
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{8,}"), "whsec_" + REDACTED),
    # credentials inside URLs: scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
)
# Query parameters that carry one-time credentials (OAuth/OIDC codes and state, reset and invitation tokens).
_QUERY_SECRET = re.compile(
    r"""(?i)([?&](?:code|state|token|key|secret|signature|sig|access_token|id_token|refresh_token|password|"""
    r"""invitation|invite|reset)=)[^&\s"'#]+"""
)
# URL rules whose variables carry a credential (see register_token_routes), as compiled patterns.
_route_patterns: tuple[re.Pattern[str], ...] = ()
# Variable names in URL rules that hold a secret: /account/reset/<token>, /invite/<token>, /created/<key>...
SECRET_ROUTE_ARGS = frozenset({"token", "key", "secret", "code", "signature"})
_known_secrets: tuple[str, ...] = ()  # longest first, replaced whole so readers never see it half built
_known_lock = threading.Lock()
_MIN_SECRET_LENGTH = 8


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever it appears in a log line (WAHA API keys, configured secrets)."""
    global _known_secrets
    if value and len(value) >= _MIN_SECRET_LENGTH and value not in _known_secrets:
        with _known_lock:
            _known_secrets = tuple(sorted({*_known_secrets, value}, key=len, reverse=True))
        redacted_path.cache_clear()


def register_token_routes(rules: Iterable[str]) -> None:
    """Mask the credential part of these URL rules wherever such a path appears in a log line.

    `rules` are Werkzeug rule strings; only the variables named in SECRET_ROUTE_ARGS are masked, so
    `/account/reset/<token>` logs as `/account/reset/[REDACTED]` and `/sessions/<session_id>` stays readable.
    """
    global _route_patterns
    patterns = []
    for rule in rules:
        parts = re.split(r"(<[^>]+>)", rule)
        names = [part[1:-1].split(":")[-1] for part in parts if part.startswith("<")]
        if not SECRET_ROUTE_ARGS.intersection(names):
            continue
        regex, secrets = "", 0
        for part in parts:
            if part.startswith("<"):
                name = part[1:-1].split(":")[-1]
                value = r"[^/\s?#\"']+"
                if name in SECRET_ROUTE_ARGS:
                    regex += f"(?P<secret{secrets}>{value})"
                    secrets += 1
                else:
                    regex += f"(?:{value})"
            else:
                regex += re.escape(part)
        patterns.append(re.compile(regex + r"(?=[/?#\s\"']|$)"))
    _route_patterns = tuple(patterns)
    redacted_path.cache_clear()


def _mask_route(match: re.Match[str]) -> str:
    """The matched path with each of its credential variables (the groups secret0, secret1, ...) masked."""
    text, base, kept = match.group(0), match.start(), 0
    masked = []
    for name in sorted(match.groupdict(), key=match.start):
        start, end = match.span(name)
        masked.append(text[kept : start - base] + REDACTED)
        kept = end - base
    return "".join(masked) + text[kept:]


def redact(text: str, *, keep_links: bool = False) -> str:
    """`text` with known secrets, bearer tokens, API keys, URL passwords and token-bearing paths masked.

    `keep_links` leaves token-bearing paths and query parameters alone (the development mail log only).
    """
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if not keep_links:
        for route in _route_patterns:
            text = route.sub(_mask_route, text)
        text = _QUERY_SECRET.sub(r"\1" + REDACTED, text)
    return text


@functools.lru_cache(maxsize=4096)
def redacted_path(path: str) -> str:
    """`path` as `redact` leaves it, remembered: the access log writes the same few paths again and again."""
    return redact(path)


def log_access(method: str, path: str, status: int, elapsed_ms: float) -> None:
    """The access line of one request: method, path (redacted, no query string), status and time.

    Its only free text is the path, redacted here once per distinct path, so the line skips the redacting
    filter's pass over the whole message."""
    if _access.isEnabledFor(logging.INFO):
        _access.info(
            "%s %s %s %.1fms", method, redacted_path(path), status, elapsed_ms, extra={"portal_redacted": True}
        )


_access = logging.getLogger("portal.access")


class RedactingFilter(logging.Filter):
    """Masks secrets in the message, the traceback and the stack of a record before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "portal_redacted", False) and not record.exc_info and not record.stack_info:
            return True  # built from parts redacted already (log_access)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for logging's own error report
            return True
        # The development mail backend logs sign-in links on purpose; production refuses MAIL_BACKEND=log.
        redacted = redact(message, keep_links=bool(getattr(record, "portal_mail_link", False)))
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None  # formatters now use the redacted exc_text
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def configure_logging(level: str, fmt: str) -> None:
    """Root logging for the process: JSON or text, with the request context filter."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(tenant)s %(session)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_portal", False):
            root.removeHandler(existing)
    handler._portal = True  # type: ignore[attr-defined]  # a marker attribute that tells our handler apart
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full URLs with query strings (which may carry keys) at DEBUG
    logging.getLogger("urllib3").setLevel(max(logging.getLevelName(level), logging.INFO))


_SECRET_SETTINGS = (
    "SECRET_KEY",
    "ENCRYPTION_KEY",
    "WAHA_API_KEY",
    "WAHA_WEBHOOK_SECRET",
    "METRICS_TOKEN",
    "JWT_HS256_SECRET",
    "OIDC_CLIENT_SECRET",
)


def init_app(app: Flask) -> None:
    for name in _SECRET_SETTINGS:
        register_secret(app.config.get(name))
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])

    @app.before_request
    def assign_request_id() -> None:
        # `g` belongs to the app context, which a test or CLI command may hold open across several requests;
        # every request starts from an empty one, as it does in production.
        vars(g).clear()
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def add_request_id(response: Response) -> Response:
        request_id = getattr(g, "request_id", None)
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        started = getattr(g, "request_started", None)
        if started is not None and request.endpoint != "static":
            log_access(request.method, request.path, response.status_code, (time.perf_counter() - started) * 1000)
        return response
