"""The portal's one HTTP client for URLs that tenants or operators name (webhook deliveries, the JWKS fetch).

Every call checks the URL with portal.net.policy and then connects only to an address that passed the check: the
request goes to the IP address itself, with the Host header and TLS (SNI and certificate check) for the original
name. A DNS answer that changes between the check and the connect (DNS rebinding) therefore changes nothing.
No redirects are followed, the environment is ignored (no HTTP(S)_PROXY, no .netrc), the whole call is bounded
in time, and at most `max_bytes` of the answer are read.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from portal.net import policy

USER_AGENT = "WAHA-Portal/1"
CHUNK = 8192
MAX_ADDRESSES = 3  # a name with several addresses: the next one is tried only when connecting fails


@dataclass
class Answer:
    """What came back: status, headers, at most `max_bytes` of the body, and whether it was cut."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool
    address: str = ""  # the address the request went to
    elapsed: float = field(default=0.0)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class _PinnedAdapter(HTTPAdapter):
    """Connects to the IP address in the URL; for https, SNI and the certificate check use the Host header's name."""

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host = request.headers.get("Host", "")  # the prepared request's headers may hold bytes
        name = host.decode("latin-1") if isinstance(host, bytes) else host
        if host_params.get("scheme") == "https" and name and not name.startswith("["):
            pool_kwargs["server_hostname"] = name.rsplit(":", 1)[0]
        return host_params, pool_kwargs


_local = threading.local()


def _adapter() -> _PinnedAdapter:
    """One connection pool per thread and process (a forked worker never shares a parent's sockets).

    Requests are sent through the adapter itself, not a Session: no redirect handling (a Session reads a 3xx
    body to the end even when it does not follow it), no cookies, and nothing from the environment (proxy
    variables, .netrc, CA bundle variables).
    """
    adapter = getattr(_local, "adapter", None)
    if adapter is None or getattr(_local, "pid", None) != os.getpid():
        adapter = _PinnedAdapter(max_retries=0, pool_connections=4, pool_maxsize=4)
        _local.adapter, _local.pid = adapter, os.getpid()
    return adapter


def _pinned_url(destination: policy.Destination, address: str) -> str:
    parts = urlsplit(destination.url)
    host = f"[{address}]" if ":" in address else address
    return urlunsplit((destination.scheme, f"{host}:{destination.port}", parts.path or "/", parts.query, ""))


def _connect_failed(exc: requests.RequestException) -> bool:
    """True when nothing was sent (no connection was made), so another address may be tried safely."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    return isinstance(getattr(reason, "reason", reason), NewConnectionError)


def request(
    method: str,
    url: str,
    *,
    allow_private: bool,
    timeout: float,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    schemes: Iterable[str] = policy.SCHEMES,
    verify: bool | str = True,
    resolve: policy.Resolver = policy.system_resolver,
) -> Answer:
    """Check url, connect to a checked address and send one request; never follows redirects.

    `timeout` (seconds) bounds connecting, each read and the whole body; `max_bytes` bounds what is read of it.
    Raises policy.Refused for a refused destination, requests.Timeout or another requests.RequestException.
    """
    destination = policy.check(url, allow_private=allow_private, schemes=schemes, resolve=resolve)
    send_headers = {
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",
        **(headers or {}),
        "Host": destination.host_header,
    }
    started = time.monotonic()
    deadline = started + timeout
    last: requests.RequestException | None = None
    for address in destination.addresses[:MAX_ADDRESSES]:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            prepared = requests.Request(
                method, _pinned_url(destination, address), headers=send_headers, data=data
            ).prepare()
            response = _adapter().send(
                prepared, stream=True, timeout=(min(left, timeout), timeout), verify=verify, proxies={}
            )
        except requests.RequestException as exc:
            if not _connect_failed(exc):
                raise
            last = exc
            continue
        with response:
            body, truncated = _read_bounded(response, max_bytes, deadline)
        return Answer(
            status=response.status_code,
            headers=dict(response.headers),
            body=body,
            truncated=truncated,
            address=address,
            elapsed=time.monotonic() - started,
        )
    if last is not None:
        raise last
    raise requests.ConnectTimeout(f"no connection within {timeout:g} s")


def _read_bounded(response: requests.Response, max_bytes: int, deadline: float) -> tuple[bytes, bool]:
    """At most max_bytes of the body, read before the deadline (a slow trickle is cut off, not waited for)."""
    chunks: list[bytes] = []
    size = 0
    truncated = False
    try:
        for chunk in response.iter_content(CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                truncated = True
                break
            if time.monotonic() > deadline:
                truncated = True
                break
    except requests.RequestException:
        truncated = True  # the status line came; a body cut short is still an answer
    return b"".join(chunks)[:max_bytes], truncated
