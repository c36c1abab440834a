"""The plumbing under every WAHA call: pooled session, timeouts, retries, one deadline, circuit breaker.

``WahaTransport`` holds one ``requests.Session`` per server with the API key, a bounded connection pool
(``portal.waha.pool``), a timeout on every request, retries only where repeating is safe, and a circuit breaker
(``portal.waha.breaker``); it also decodes answers (JSON, a named field, a base64 file) and reports calls to the
observer. Errors come out as the typed classes in ``portal.waha.errors``. The WAHA endpoints themselves are the
methods of ``portal.waha.client.WahaClient``, which builds on this class.

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
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri
from urllib3.exceptions import EmptyPoolError, NewConnectionError

from portal.waha.breaker import RedisBreakerStore, ServerBreaker, retry_after_seconds
from portal.waha.errors import (
    WahaCircuitOpen,
    WahaError,
    WahaPoolExhausted,
    WahaTimeout,
    WahaUnavailable,
    from_response,
)
from portal.waha.pool import BoundedPoolAdapter, acquire_deadline
from portal.waha.settings import WahaSettings

log = logging.getLogger(__name__)

Observer = Callable[[str, str, float], None]

_RETRY_STATUSES = frozenset({502, 503, 504})
_NOT_FAILURES_5XX = frozenset({501})  # "not implemented" is an answer, not a sign the server is down
_ERROR_BODY_READ_BYTES = 4096
# A retry is not started unless at least this much of the call's deadline is left for it.
_MIN_TRY_S = 0.1


def _is_retryable(exc: WahaError, retry_safe: bool | str) -> bool:
    if isinstance(exc, (WahaCircuitOpen, WahaPoolExhausted)):
        return False
    if retry_safe == UNSENT_ONLY:
        return isinstance(exc, WahaUnavailable) and exc.never_sent
    return isinstance(exc, WahaUnavailable) and (exc.status is None or exc.status in _RETRY_STATUSES)


# retry_safe value for calls WAHA may not deduplicate: retried only when no connection was ever opened
UNSENT_ONLY = "unsent-only"


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the connection itself failed (refused, unresolvable), so no byte of the request left."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, NewConnectionError) or isinstance(exc, requests.ConnectTimeout)


class WahaTransport:
    """Requests to one WAHA server, with the pool, deadline, retries and breaker; the base of ``WahaClient``."""

    def __init__(
        self, settings: WahaSettings, observer: Observer | None = None, breaker_store: RedisBreakerStore | None = None
    ) -> None:
        self.settings = settings
        self._base_url = settings.base_url.rstrip("/")
        self._timeout_s = settings.timeout_ms / 1000
        self._observer = observer
        self._breaker = ServerBreaker(
            settings.breaker_fail_max, settings.breaker_reset_s, name=self._base_url, store=breaker_store
        )
        self._registry_key: tuple[str, str] | None = None  # set by portal.waha.client.get_client

        adapter = BoundedPoolAdapter(
            pool_max=settings.pool_max,
            pool_min=settings.pool_min,
            acquire_timeout_s=settings.pool_acquire_timeout_ms / 1000,
            idle_timeout_s=settings.pool_idle_timeout_ms / 1000,
        )
        self._adapter = adapter
        self._session = requests.Session()
        # WAHA sits beside the portal: no proxy or .netrc from the environment, and no scan of it on every call
        self._session.trust_env = False
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["Accept"] = "application/json"
        if settings.api_key:
            self._session.headers["X-Api-Key"] = settings.api_key

    @property
    def breaker_state(self) -> str:
        """State of this server's circuit breaker: "closed", "open" or "half-open"."""
        return self._breaker.state

    @property
    def breaker(self) -> ServerBreaker:
        """This server's circuit breaker: a caller may ask its check ahead, in a round trip of its own
        (`ServerBreaker.gate`), and hand the verdict to the call (`ServerBreaker.answered`)."""
        return self._breaker

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
                return self._try_once(
                    method, path, url or self._base_url + path, body, params, headers, accept_statuses, stream, deadline
                )
            except WahaError as exc:
                if attempt == tries or not _is_retryable(exc, retry_safe):
                    raise
                delay = self._backoff(attempt)
                if time.monotonic() + delay + _MIN_TRY_S > deadline:
                    log.info(
                        "WAHA %s %s failed (%s), no time left for try %d of %d",
                        method,
                        path,
                        type(exc).__name__,
                        attempt + 1,
                        tries,
                    )
                    raise
                log.info(
                    "WAHA %s %s failed (%s), try %d of %d in %.2f s",
                    method,
                    path,
                    type(exc).__name__,
                    attempt + 1,
                    tries,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _try_once(
        self, method, path, url, body, params, headers, accept_statuses, stream, deadline: float
    ) -> requests.Response:
        wait = self._breaker.check()
        if wait:
            circuit_open = WahaCircuitOpen(
                None, "", f"WAHA at {self._base_url} keeps failing; calls paused for {wait:.1f} s more"
            )
            circuit_open.retry_after = retry_after_seconds(wait)
            raise circuit_open
        started = time.perf_counter()
        left = max(deadline - time.monotonic(), 0.001)
        try:
            with acquire_deadline(deadline):
                if params is None and not stream:
                    response = self._send_prepared(method, url, body, headers, left)
                else:
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
            timed_out = WahaTimeout(None, "", f"{method} {path} got no answer within {self.settings.timeout_ms} ms")
            timed_out.never_sent = isinstance(exc, requests.ConnectTimeout)
            timed_out.retry_after = retry_after_seconds(open_for) if open_for else None
            raise timed_out from exc
        except requests.ConnectionError as exc:
            open_for = self._breaker.record(failed=True)
            self._log_call(method, path, "connection error", started)
            unreachable = WahaUnavailable(None, "", f"cannot reach WAHA at {self._base_url}")
            unreachable.never_sent = _never_connected(exc)
            unreachable.retry_after = retry_after_seconds(open_for) if open_for else None
            raise unreachable from exc
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

    def _send_prepared(self, method: str, url: str, body: Any, headers: dict | None, left: float) -> requests.Response:
        """One call without a query string or a streamed answer (every send, most calls): prepared here and handed
        straight to the pooled adapter. What the session would add per call is what a WAHA call never uses:
        merged cookie jars, the environment's settings, redirects and hooks. The bytes on the wire are the same:
        the session's headers, the body as requests encodes `json=`, the same Content-Length rule."""
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = requote_uri(url)
        prepared.headers = CaseInsensitiveDict(self._session.headers)
        if headers:
            prepared.headers.update(headers)
        if body is not None:
            prepared.body = json.dumps(body, allow_nan=False).encode("utf-8")
            prepared.headers["Content-Type"] = "application/json"
            prepared.headers["Content-Length"] = str(len(prepared.body))
        elif method not in ("GET", "HEAD"):
            prepared.headers["Content-Length"] = "0"
        response = self._adapter.send(prepared, stream=False, timeout=(left, left))
        response.content  # noqa: B018 - read the whole answer now and give the connection back, as requests does
        return response

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
