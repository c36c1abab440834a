"""HTTP client for one WAHA server: the only code in the portal that talks to WAHA.

One ``requests.Session`` per server with the API key, a bounded connection pool (``portal.waha.pool``), a
timeout on every request, retries only where repeating is safe, and a circuit breaker
(``portal.waha.breaker``). Errors come out as the typed classes in ``portal.waha.errors``.

Retry rules: connection errors, timeouts and 502/503/504 are retried with exponential backoff and jitter on
calls that are safe to repeat: GET, PUT, DELETE, session start/stop/restart, and sends, which always carry a
pre-generated message id that WAHA dedupes on. Session create, logout and pairing-code requests are never
retried.

Deadline: ``timeout_ms`` bounds the whole call, not each try. The tries and the backoff between them share
one deadline; each try gets what is left of it (for the wait for a pooled connection, for connecting and for
each read), and no retry starts when too little is left. So a call against a WAHA that does not answer
fails after about ``timeout_ms``, never (1 + retry_attempts) times that.

Breaker: given a ``RedisBreakerStore``, the breaker's state is shared through Redis by every process
(web workers, RQ workers and their forked work-horses); without one, or while Redis is down, it lives in
this process. An open circuit fails at once with ``WahaCircuitOpen``, whose ``retry_after`` is the time
left until the circuit lets a call through again.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from urllib3.exceptions import EmptyPoolError, NewConnectionError

from portal.waha.breaker import RedisBreakerStore, ServerBreaker, retry_after_seconds
from portal.waha.errors import (
    WahaAlreadyStarted,
    WahaCircuitOpen,
    WahaError,
    WahaMediaTooLarge,
    WahaNotFound,
    WahaPoolExhausted,
    WahaTimeout,
    WahaUnavailable,
    from_response,
)
from portal.waha.ids import new_message_id, normalize_message_id, to_chat_id, to_phone_digits
from portal.waha.pool import BoundedPoolAdapter, acquire_deadline
from portal.waha.settings import WahaSettings

log = logging.getLogger(__name__)

Observer = Callable[[str, str, float], None]

_RETRY_STATUSES = frozenset({502, 503, 504})
_NOT_FAILURES_5XX = frozenset({501})  # "not implemented" is an answer, not a sign the server is down
_DEFAULT_MAX_MEDIA_BYTES = 50 * 1024 * 1024  # WAHA's own request body limit
_ERROR_BODY_READ_BYTES = 4096
# A retry is not started unless at least this much of the call's deadline is left for it.
_MIN_TRY_S = 0.1


@dataclass(frozen=True)
class SendResult:
    """Outcome of a send: the normalised WhatsApp message id and WAHA's raw (engine-specific) response."""

    message_id: str
    raw: dict


def _observed(method):
    """Report each public call to the client's observer as (name, "ok" or error class name, seconds)."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self: WahaClient, *args, **kwargs):
        started = time.perf_counter()
        outcome = "ok"
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            self._notify(name, outcome, time.perf_counter() - started)

    return wrapper


def _segment(value: str) -> str:
    return quote(value, safe="")


def _is_retryable(exc: WahaError, retry_safe: bool | str) -> bool:
    if isinstance(exc, (WahaCircuitOpen, WahaPoolExhausted)):
        return False
    if retry_safe == UNSENT_ONLY:
        return isinstance(exc, WahaUnavailable) and exc.never_sent
    return isinstance(exc, WahaUnavailable) and (exc.status is None or exc.status in _RETRY_STATUSES)


# retry_safe value for calls WAHA may not deduplicate: retried only when no connection was ever opened
UNSENT_ONLY = "unsent-only"
# WAHA dedupes a pre-generated message id on sendText (the only send whose schema has `id`); media sends
# carry the id too, but a retry after a lost answer could deliver twice on an engine that ignores it.
_DEDUPED_SENDS = frozenset({"/api/sendText"})


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the connection itself failed (refused, unresolvable), so no byte of the request left."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, NewConnectionError) or isinstance(exc, requests.ConnectTimeout)


def _check_file(file: dict) -> dict:
    if not isinstance(file, dict) or not file.get("mimetype"):
        raise ValueError("file needs a mimetype")
    if ("url" in file) == ("data" in file):
        raise ValueError("file needs exactly one of url or data")
    return file


class WahaClient:
    """Client for one WAHA server; safe to share between threads. Prefer ``get_client(settings)``."""

    def __init__(self, settings: WahaSettings, observer: Observer | None = None,
                 breaker_store: RedisBreakerStore | None = None) -> None:
        self.settings = settings
        self._base_url = settings.base_url.rstrip("/")
        self._timeout_s = settings.timeout_ms / 1000
        self._observer = observer
        self._breaker = ServerBreaker(settings.breaker_fail_max, settings.breaker_reset_s, name=self._base_url,
                                      store=breaker_store)
        self._registry_key: tuple[str, str] | None = None

        adapter = BoundedPoolAdapter(
            pool_max=settings.pool_max,
            pool_min=settings.pool_min,
            acquire_timeout_s=settings.pool_acquire_timeout_ms / 1000,
            idle_timeout_s=settings.pool_idle_timeout_ms / 1000,
        )
        self._session = requests.Session()
        # WAHA sits beside the portal: no proxy or .netrc from the environment, and no scan of it on every call
        self._session.trust_env = False
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["Accept"] = "application/json"
        if settings.api_key:
            self._session.headers["X-Api-Key"] = settings.api_key

    def close(self) -> None:
        """Close pooled connections and drop this client from the process-wide registry."""
        _forget(self)
        self._session.close()

    @property
    def breaker_state(self) -> str:
        """State of this server's circuit breaker: "closed", "open" or "half-open"."""
        return self._breaker.state

    # ------------------------------------------------------------------ sessions

    @_observed
    def create_session(self, name: str, config: dict | None, start: bool = True) -> dict:
        """Create a session (``start`` is always sent: WAHA's code defaults it to false, its docs to true)."""
        body: dict[str, Any] = {"name": name, "start": start}
        if config is not None:
            body["config"] = config
        return self._json(self._request("POST", "/api/sessions", body=body, retry_safe=UNSENT_ONLY))

    @_observed
    def update_session(self, name: str, config: dict) -> dict:
        """Replace a session's whole config (WAHA restarts the session if it was running)."""
        path = f"/api/sessions/{_segment(name)}"
        return self._json(self._request("PUT", path, body={"config": config}, retry_safe=True))

    @_observed
    def get_session(self, name: str) -> dict:
        """Return one session's info, including ``engine``."""
        return self._get_session(name)

    @_observed
    def list_sessions(self, all: bool = True) -> list[dict]:  # noqa: A002 - WAHA's own parameter name
        """List sessions; with ``all=False`` WAHA leaves out STOPPED ones."""
        params = {"all": "true" if all else "false"}
        return self._json(self._request("GET", "/api/sessions", params=params, retry_safe=True)) or []

    @_observed
    def delete_session(self, name: str) -> None:
        """Delete a session (unpair, stop, forget config). Idempotent in WAHA."""
        self._request("DELETE", f"/api/sessions/{_segment(name)}", retry_safe=True)

    @_observed
    def start_session(self, name: str) -> dict:
        """Start an existing session; starting one that already runs returns its info."""
        try:
            return self._json(self._request("POST", f"/api/sessions/{_segment(name)}/start", retry_safe=True))
        except WahaAlreadyStarted:
            # Older Core images refuse a second start; for us the session is where we wanted it.
            return self._get_session(name)

    @_observed
    def stop_session(self, name: str) -> dict:
        """Stop a session, keeping its login and config."""
        return self._json(self._request("POST", f"/api/sessions/{_segment(name)}/stop", retry_safe=True))

    @_observed
    def logout_session(self, name: str) -> dict:
        """Unpair the phone and wipe the login, keeping the config (a running session goes back to QR)."""
        return self._json(self._request("POST", f"/api/sessions/{_segment(name)}/logout", retry_safe=UNSENT_ONLY))

    @_observed
    def restart_session(self, name: str) -> dict:
        """Stop and start a session."""
        return self._json(self._request("POST", f"/api/sessions/{_segment(name)}/restart", retry_safe=True))

    @_observed
    def get_me(self, name: str) -> dict | None:
        """Return the logged-in account (``id``, ``pushName``...) or None before login."""
        me = self._json(self._request("GET", f"/api/sessions/{_segment(name)}/me", retry_safe=True))
        return me or None

    # ------------------------------------------------------------------ pairing

    @_observed
    def get_qr(self, name: str) -> dict:
        """Return the current QR as ``{"mimetype": "image/png", "data": "<base64>"}`` (session in SCAN_QR_CODE)."""
        # WAHA compares Accept as an exact string; anything else gets raw PNG bytes.
        response = self._request(
            "GET",
            f"/api/{_segment(name)}/auth/qr",
            params={"format": "image"},
            headers={"Accept": "application/json"},
            retry_safe=True,
        )
        return self._base64_file(response, default_mimetype="image/png")

    @_observed
    def get_qr_value(self, name: str) -> str:
        """Return the raw QR string, for rendering the QR ourselves."""
        response = self._request("GET", f"/api/{_segment(name)}/auth/qr", params={"format": "raw"}, retry_safe=True)
        return self._field(response, "value")

    @_observed
    def request_pairing_code(self, name: str, phone_digits: str) -> str:
        """Ask WAHA for a pairing code ("ABCD-EFGH") to type on the phone instead of scanning the QR."""
        body = {"phoneNumber": to_phone_digits(phone_digits)}
        response = self._request("POST", f"/api/{_segment(name)}/auth/request-code", body=body, retry_safe=UNSENT_ONLY)
        return self._field(response, "code")

    @_observed
    def get_screenshot(self, name: str) -> dict:
        """Return a screenshot of the session as ``{"mimetype", "data"}`` (base64)."""
        response = self._request(
            "GET",
            "/api/screenshot",
            params={"session": name},
            headers={"Accept": "application/json"},
            retry_safe=True,
        )
        return self._base64_file(response, default_mimetype="image/jpeg")

    # ------------------------------------------------------------------ messaging

    @_observed
    def send_text(
        self,
        session: str,
        chat_id: str,
        text: str,
        *,
        message_id: str | None = None,
        reply_to: str | None = None,
        link_preview: bool = True,
    ) -> SendResult:
        """Send a text message; ``message_id`` (generated when missing) makes a retried send a single message."""
        body: dict[str, Any] = {"text": text, "linkPreview": link_preview}
        if reply_to:
            body["reply_to"] = reply_to
        return self._send("/api/sendText", session, chat_id, body, message_id)

    @_observed
    def send_image(
        self, session: str, chat_id: str, file: dict, *, caption: str | None = None, message_id: str | None = None
    ) -> SendResult:
        """Send an image; ``file`` is ``{"mimetype", "filename"?, "url" | "data"}``."""
        return self._send("/api/sendImage", session, chat_id, self._media_body(file, caption), message_id)

    @_observed
    def send_file(
        self, session: str, chat_id: str, file: dict, *, caption: str | None = None, message_id: str | None = None
    ) -> SendResult:
        """Send a document; ``file`` is ``{"mimetype", "filename"?, "url" | "data"}``."""
        return self._send("/api/sendFile", session, chat_id, self._media_body(file, caption), message_id)

    @_observed
    def send_voice(
        self, session: str, chat_id: str, file: dict, *, convert: bool = True, message_id: str | None = None
    ) -> SendResult:
        """Send a voice note; ``convert`` lets WAHA transcode to OGG/Opus."""
        body = {"file": _check_file(file), "convert": convert}
        return self._send("/api/sendVoice", session, chat_id, body, message_id)

    @_observed
    def send_video(
        self,
        session: str,
        chat_id: str,
        file: dict,
        *,
        caption: str | None = None,
        convert: bool = True,
        as_note: bool = False,
        message_id: str | None = None,
    ) -> SendResult:
        """Send a video; ``as_note`` sends it as a round video note."""
        body = self._media_body(file, caption)
        body["convert"] = convert
        body["asNote"] = as_note
        return self._send("/api/sendVideo", session, chat_id, body, message_id)

    @_observed
    def get_chat_message(self, session: str, chat_id: str, message_id: str) -> dict | None:
        """Return one message of a chat as WAHA's engine stores it (``WAMessage``, with its ``ack``), or None when
        WAHA does not know it (404). Used to settle a send whose answer never arrived."""
        path = f"/api/{_segment(session)}/chats/{_segment(to_chat_id(chat_id))}/messages/{_segment(message_id)}"
        try:
            body = self._json(self._request("GET", path, params={"downloadMedia": "false"}, retry_safe=True))
        except WahaNotFound as exc:
            if "session" in exc.message.lower():
                raise  # the session is gone, which says nothing about the message
            return None
        return body if isinstance(body, dict) else None

    @_observed
    def check_number(self, session: str, phone: str) -> dict:
        """Return ``{"numberExists": bool, "chatId": str | None}`` for a phone number (session must be WORKING)."""
        params = {"phone": to_phone_digits(phone), "session": session}
        body = self._json(self._request("GET", "/api/contacts/check-exists", params=params, retry_safe=True)) or {}
        return {"numberExists": bool(body.get("numberExists")), "chatId": body.get("chatId") or None}

    @_observed
    def download_media(self, url: str, *, max_bytes: int = _DEFAULT_MAX_MEDIA_BYTES) -> tuple[bytes, str]:
        """Download a media file WAHA announced in an event; returns (content, content type).

        The API key is only ever sent to this client's WAHA server: a file URL on another host is fetched
        from our base URL when it is a WAHA file path, and refused otherwise.
        """
        target = self._media_url(url)
        response = self._request("GET", urlsplit(target).path, url=target, stream=True, retry_safe=True,
                                 headers={"Accept": "*/*"})
        with response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise WahaMediaTooLarge(response.status_code, "", f"media is {declared} bytes, cap is {max_bytes}")
            chunks, size = [], 0
            try:
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise WahaMediaTooLarge(response.status_code, "", f"media is over the cap of {max_bytes} bytes")
                    chunks.append(chunk)
            except requests.RequestException as exc:
                raise WahaUnavailable(None, "", f"media download broke off: {type(exc).__name__}") from exc
        content_type = response.headers.get("Content-Type", "application/octet-stream")
        return b"".join(chunks), content_type

    # ------------------------------------------------------------------ server

    @_observed
    def ping(self) -> bool:
        """Return True when WAHA answers ``/ping`` (one try, no auth needed), False otherwise."""
        try:
            self._request("GET", "/ping", retry_safe=False)
        except WahaError:
            return False
        return True

    @_observed
    def health(self) -> dict:
        """Return WAHA's health report; an unhealthy server (503) is returned, not raised."""
        return self._json(self._request("GET", "/health", retry_safe=True, accept_statuses=(503,))) or {}

    @_observed
    def version(self) -> dict:
        """Return ``{"version", "engine", "tier", ...}`` of the WAHA server."""
        return self._json(self._request("GET", "/api/server/version", retry_safe=True))

    @_observed
    def server_status(self) -> dict:
        """Return ``{"startTimestamp", "uptime", "worker"}``; a changed startTimestamp means WAHA restarted."""
        return self._json(self._request("GET", "/api/server/status", retry_safe=True))

    # ------------------------------------------------------------------ internals

    def _get_session(self, name: str) -> dict:
        return self._json(self._request("GET", f"/api/sessions/{_segment(name)}", retry_safe=True))

    @staticmethod
    def _media_body(file: dict, caption: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"file": _check_file(file)}
        if caption is not None:
            body["caption"] = caption
        return body

    def _send(self, endpoint: str, session: str, chat_id: str, fields: dict, message_id: str | None) -> SendResult:
        chat = to_chat_id(chat_id)
        message_id = message_id or new_message_id()
        body = {"session": session, "chatId": chat, **fields, "id": message_id}
        # Repeating a send is safe only where WAHA dedupes on the pre-generated id in the body.
        retry_safe: bool | str = True if endpoint in _DEDUPED_SENDS else UNSENT_ONLY
        raw = self._json(self._request("POST", endpoint, body=body, retry_safe=retry_safe))
        if not isinstance(raw, dict):
            raw = {"value": raw}
        return SendResult(message_id=normalize_message_id(raw) or f"true_{chat}_{message_id}", raw=raw)

    def _media_url(self, url: str) -> str:
        parts = urlsplit(url)
        base = urlsplit(self._base_url)
        if not parts.scheme:
            return self._base_url + "/" + url.lstrip("/")
        if (parts.scheme, parts.netloc) == (base.scheme, base.netloc):
            return url
        if parts.path.startswith("/api/files/"):
            # WAHA builds file URLs from its own WAHA_BASE_URL, which is often a name only it can resolve.
            return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))
        raise ValueError("refusing to download media from a host other than the WAHA server")

    def _request(
        self,
        method: str,
        path: str,
        *,
        retry_safe: bool | str,
        body: Any = None,
        params: dict | None = None,
        headers: dict | None = None,
        accept_statuses: tuple[int, ...] = (),
        stream: bool = False,
        url: str | None = None,
    ) -> requests.Response:
        """Send one logical request, retrying transport failures and 502/503/504 when ``retry_safe``.

        Every try and every backoff fits in one deadline of ``timeout_ms`` from now.
        """
        tries = 1 + self.settings.retry_attempts if retry_safe else 1
        deadline = time.monotonic() + self._timeout_s
        for attempt in range(1, tries + 1):
            try:
                return self._try_once(method, path, url or self._base_url + path, body, params, headers,
                                      accept_statuses, stream, deadline)
            except WahaError as exc:
                if attempt == tries or not _is_retryable(exc, retry_safe):
                    raise
                delay = self._backoff(attempt)
                if time.monotonic() + delay + _MIN_TRY_S > deadline:
                    log.info("WAHA %s %s failed (%s), no time left for try %d of %d",
                             method, path, type(exc).__name__, attempt + 1, tries)
                    raise
                log.info("WAHA %s %s failed (%s), try %d of %d in %.2f s",
                         method, path, type(exc).__name__, attempt + 1, tries, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _try_once(self, method, path, url, body, params, headers, accept_statuses, stream,
                  deadline: float) -> requests.Response:
        wait = self._breaker.check()
        if wait:
            error = WahaCircuitOpen(
                None, "", f"WAHA at {self._base_url} keeps failing; calls paused for {wait:.1f} s more"
            )
            error.retry_after = retry_after_seconds(wait)
            raise error
        started = time.perf_counter()
        left = max(deadline - time.monotonic(), 0.001)
        try:
            with acquire_deadline(deadline):
                response = self._session.request(
                    method, url, params=params, json=body, headers=headers, timeout=(left, left), stream=stream
                )
        except EmptyPoolError as exc:
            raise WahaPoolExhausted(
                None, "", f"no free connection to WAHA within {self.settings.pool_acquire_timeout_ms} ms"
            ) from exc
        except requests.Timeout as exc:
            open_for = self._breaker.record(failed=True)
            self._log_call(method, path, "timeout", started)
            error = WahaTimeout(None, "", f"{method} {path} got no answer within {self.settings.timeout_ms} ms")
            error.never_sent = isinstance(exc, requests.ConnectTimeout)
            error.retry_after = retry_after_seconds(open_for) if open_for else None
            raise error from exc
        except requests.ConnectionError as exc:
            open_for = self._breaker.record(failed=True)
            self._log_call(method, path, "connection error", started)
            error = WahaUnavailable(None, "", f"cannot reach WAHA at {self._base_url}")
            error.never_sent = _never_connected(exc)
            error.retry_after = retry_after_seconds(open_for) if open_for else None
            raise error from exc
        except requests.RequestException as exc:
            raise WahaError(None, "", f"{method} {path} could not be sent: {type(exc).__name__}") from exc

        status = response.status_code
        self._log_call(method, path, status, started)
        if 200 <= status < 300 or status in accept_statuses:
            self._breaker.record(failed=False)
            return response

        if stream:
            raw_body = next(response.iter_content(_ERROR_BODY_READ_BYTES), b"")
            response.close()
        else:
            raw_body = response.content
        open_for = self._breaker.record(failed=status >= 500 and status not in _NOT_FAILURES_5XX)
        error = from_response(status, raw_body.decode("utf-8", errors="replace"))
        if open_for and isinstance(error, WahaUnavailable):
            error.retry_after = retry_after_seconds(open_for)
        raise error

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.retry_backoff_max_s, self.settings.retry_backoff_s * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    @staticmethod
    def _log_call(method: str, path: str, status: int | str, started: float) -> None:
        # Path only: query strings can carry phone numbers, bodies carry message text.
        log.debug("WAHA %s %s -> %s in %.0f ms", method, path, status, (time.perf_counter() - started) * 1000)

    @staticmethod
    def _json(response: requests.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise WahaError(response.status_code, response.text, "WAHA answered with a body that is not JSON") from exc

    def _field(self, response: requests.Response, key: str) -> str:
        body = self._json(response)
        if not isinstance(body, dict) or not isinstance(body.get(key), str):
            raise WahaError(response.status_code, response.text, f"WAHA answer has no {key!r}")
        return body[key]

    def _base64_file(self, response: requests.Response, default_mimetype: str) -> dict:
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            body = self._json(response)
            if not isinstance(body, dict) or not isinstance(body.get("data"), str):
                raise WahaError(response.status_code, response.text, "WAHA answer has no base64 'data'")
            return {"mimetype": body.get("mimetype") or default_mimetype, "data": body["data"]}
        # A proxy that rewrote Accept gets us raw image bytes; hand them back in the same shape.
        mimetype = content_type.split(";", 1)[0].strip() or default_mimetype
        return {"mimetype": mimetype, "data": base64.b64encode(response.content).decode("ascii")}

    def _notify(self, name: str, outcome: str, seconds: float) -> None:
        if self._observer is None:
            return
        try:
            self._observer(name, outcome, seconds)
        except Exception:
            # Metrics must never break a WAHA call.
            log.warning("WAHA call observer failed", exc_info=True)


# ---------------------------------------------------------------------- process-wide registry

_clients: dict[tuple[str, str], WahaClient] = {}
_clients_lock = threading.Lock()


def get_client(settings: WahaSettings, observer: Observer | None = None,
               breaker_store: RedisBreakerStore | None = None) -> WahaClient:
    """Return this process's one client for the WAHA server in ``settings`` (keyed by base URL and API key).

    The first caller's settings, observer and breaker store win; later calls with the same server get the
    same client.
    """
    key = (settings.base_url.rstrip("/"), settings.api_key)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = WahaClient(settings, observer=observer, breaker_store=breaker_store)
            client._registry_key = key
            _clients[key] = client
        return client


def close_all_clients() -> None:
    """Close every registered client (process shutdown, tests)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client._session.close()


def _forget(client: WahaClient) -> None:
    with _clients_lock:
        if client._registry_key is not None and _clients.get(client._registry_key) is client:
            del _clients[client._registry_key]


def _reset_after_fork() -> None:
    # A forked child (gunicorn worker, RQ work-horse) must not share the parent's sockets; it builds its own
    # clients. The lock is replaced too, in case the fork happened while another thread held it.
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_reset_after_fork)
