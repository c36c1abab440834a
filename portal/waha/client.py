"""HTTP client for one WAHA server: the only code in the portal that talks to WAHA.

``WahaClient`` holds the WAHA endpoints (sessions, pairing, messaging, media, server); each public method is
reported to the observer and goes through ``WahaTransport._request`` (``portal.waha.transport``), which owns
the pooled session, the timeouts, the retry rules, the one deadline per call and the circuit breaker. An
endpoint only decides whether it is safe to repeat (``retry_safe``). Errors come out as the typed classes in
``portal.waha.errors``.

``get_client`` keeps one client per WAHA server (base URL and API key) for the process; a forked child starts
with none.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from portal.waha.breaker import RedisBreakerStore
from portal.waha.calls import SendResult, _observed, _segment
from portal.waha.chats import ChatsMixin
from portal.waha.errors import WahaAlreadyStarted, WahaError, WahaMediaTooLarge, WahaNotFound, WahaUnavailable
from portal.waha.ids import new_message_id, normalize_message_id, to_chat_id, to_phone_digits
from portal.waha.passkey import PasskeyMixin
from portal.waha.settings import WahaSettings
from portal.waha.transport import UNSENT_ONLY, Observer, WahaTransport

_DEFAULT_MAX_MEDIA_BYTES = 50 * 1024 * 1024  # WAHA's own request body limit


# WAHA dedupes a pre-generated message id on sendText (the only send whose schema has `id`); media sends
# carry the id too, but a retry after a lost answer could deliver twice on an engine that ignores it.
_DEDUPED_SENDS = frozenset({"/api/sendText"})


def _check_file(file: dict) -> dict:
    if not isinstance(file, dict) or not file.get("mimetype"):
        raise ValueError("file needs a mimetype")
    if ("url" in file) == ("data" in file):
        raise ValueError("file needs exactly one of url or data")
    return file


def _captioned_send(name: str, endpoint: str, what: str) -> Any:
    """The observed ``send_image``-like method of a media send whose only options are a caption and a reply."""

    def send(
        self: WahaClient,
        session: str,
        chat_id: str,
        file: dict,
        *,
        caption: str | None = None,
        message_id: str | None = None,
        reply_to: str | None = None,
    ) -> SendResult:
        body = self._media_body(file, caption, reply_to)
        return self._send(endpoint, session, chat_id, body, message_id)

    send.__name__ = name
    send.__qualname__ = f"WahaClient.{name}"
    send.__doc__ = f'{what}; ``file`` is ``{{"mimetype", "filename"?, "url" | "data"}}``.'
    return _observed(send)


class WahaClient(ChatsMixin, PasskeyMixin, WahaTransport):
    """Client for one WAHA server; safe to share between threads. Prefer ``get_client(settings)``."""

    def close(self) -> None:
        """Close pooled connections and drop this client from the process-wide registry."""
        _forget(self)
        self._session.close()

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
    def list_sessions(self, all: bool = True) -> list[dict]:  # `all`: WAHA's own parameter name
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

    # ------------------------------------------------------------------ number health

    @_observed
    def get_timelock(self, name: str) -> dict:
        """The account's reach-out timelock: ``{"isActive", "timeEnforcementEnds" (unix s), "enforcementType"}``.
        While active, WhatsApp refuses messages to new contacts (error 463); the session stays WORKING."""
        return self._json(self._request("GET", f"/api/sessions/{_segment(name)}/timelock", retry_safe=True))

    @_observed
    def get_capping(self, name: str) -> dict:
        """The account's new-chat message capping: ``{"cappingStatus": NONE|FIRST_WARNING|SECOND_WARNING|CAPPED,
        "totalQuota", "usedQuota", "cycleStart", "cycleEnd", ...}``. CAPPED refuses new chats (error 475)."""
        return self._json(self._request("GET", f"/api/sessions/{_segment(name)}/capping", retry_safe=True))

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

    send_image = _captioned_send("send_image", "/api/sendImage", "Send an image")
    send_file = _captioned_send("send_file", "/api/sendFile", "Send a document")

    @_observed
    def send_voice(
        self,
        session: str,
        chat_id: str,
        file: dict,
        *,
        convert: bool = True,
        message_id: str | None = None,
        reply_to: str | None = None,
    ) -> SendResult:
        """Send a voice note; ``convert`` lets WAHA transcode to OGG/Opus."""
        body = self._media_body(file, None, reply_to)
        body["convert"] = convert
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
        reply_to: str | None = None,
    ) -> SendResult:
        """Send a video; ``as_note`` sends it as a round video note."""
        body = self._media_body(file, caption, reply_to)
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
        response = self._request(
            "GET", urlsplit(target).path, url=target, stream=True, retry_safe=True, headers={"Accept": "*/*"}
        )
        with response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isascii() and declared.isdecimal() and int(declared) > max_bytes:
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
    def _media_body(file: dict, caption: str | None, reply_to: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"file": _check_file(file)}
        if caption is not None:
            body["caption"] = caption
        if reply_to:
            body["reply_to"] = reply_to
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


# ---------------------------------------------------------------------- process-wide registry

_clients: dict[tuple[str, str], WahaClient] = {}
_clients_lock = threading.Lock()


def get_client(
    settings: WahaSettings, observer: Observer | None = None, breaker_store: RedisBreakerStore | None = None
) -> WahaClient:
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
