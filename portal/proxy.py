"""The real client address behind reverse proxies (TRUSTED_PROXIES), applied with Werkzeug's ProxyFix.

Everything that cares about the caller's address reads `request.remote_addr`: the rate limiter, the audit log,
the sign-in throttles, Flask-Login's session protection and the loopback-only views (/metrics, the detailed
/readyz). This module makes that value right once, at the WSGI layer, before Flask sees the request:

- TRUSTED_PROXIES unset or 0: no proxy is trusted; `X-Forwarded-*` headers are ignored.
- a count N: exactly N proxies stand in front of the portal (e.g. 1 for one nginx); the N-th address from the
  right of `X-Forwarded-For` is the client, and `X-Forwarded-Proto` / `-Host` of the nearest proxy are used.
- networks (CIDRs or addresses): a hop is trusted only when it comes from one of them. The peer must be in a
  trusted network for any header to count; then `X-Forwarded-For` is walked from the right, skipping trusted
  hops, and the first untrusted address is the client. Whatever a client writes into the header itself sits to
  the left of that and is never believed.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(raw: str, name: str = "TRUSTED_PROXIES") -> int | tuple[str, ...]:
    """`raw` as a hop count (int) or a tuple of networks (normalised CIDR strings); ValueError with a clear message."""
    text = raw.strip()
    if text.isascii() and text.isdecimal():
        count = int(text)
        if count > 10:
            raise ValueError(f'{name} counts the proxies in front of the portal (0-10), got "{raw}"')
        return count
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ValueError(
                f"{name} must be a number of proxies (e.g. 1) or a comma-separated list of proxy addresses or "
                f'networks (e.g. 10.0.0.0/8, 192.0.2.7), got "{part}"'
            ) from None
    if not networks:
        raise ValueError(f'{name} must be a number of proxies or a list of networks, got "{raw}"')
    return tuple(networks)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


class TrustedNetworksProxyFix:
    """ProxyFix whose hop count is decided per request: how many of the nearest hops are in trusted networks."""

    def __init__(self, app: Callable[..., Any], networks: Iterable[str]) -> None:
        self.app = app
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in networks)
        self._fixers: dict[int, ProxyFix] = {}

    def _trusted(self, value: str | None) -> bool:
        address = _address(value or "")
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def hops(self, environ: dict[str, Any]) -> int:
        """How many proxies of this request are trusted (0 when the peer itself is not)."""
        if not self._trusted(environ.get("REMOTE_ADDR")):
            return 0
        chain = [v.strip() for v in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if v.strip()]
        # The peer is trusted, so the rightmost entry is the address it saw; while that address is a trusted proxy
        # too, go one hop further left. The first untrusted address is the client.
        hops = 1
        while hops < len(chain) and self._trusted(chain[-hops]):
            hops += 1
        return hops

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        hops = self.hops(environ)
        if hops == 0:
            return self.app(environ, start_response)
        fixer = self._fixers.get(hops)
        if fixer is None:
            fixer = self._fixers.setdefault(hops, ProxyFix(self.app, x_for=hops, x_proto=1, x_host=1))
        return fixer(environ, start_response)


def wrap(app: Flask, trusted: int | tuple[str, ...] | None) -> None:
    """Put the right proxy fix in front of `app.wsgi_app` for the TRUSTED_PROXIES setting."""
    if not trusted:
        return
    if isinstance(trusted, int):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted, x_host=trusted)  # type: ignore[method-assign]  # Flask's documented way to add WSGI middleware
    else:
        app.wsgi_app = TrustedNetworksProxyFix(app.wsgi_app, trusted)  # type: ignore[method-assign]  # Flask's documented way to add WSGI middleware


def is_local_request() -> bool:
    """True when the caller of this request is on the loopback address of this machine.

    With no TRUSTED_PROXIES, a request that carries `X-Forwarded-For` came through a proxy the portal was not
    told about (a local nginx, say): its peer address is the proxy's, not the caller's, so it is not local.
    """
    address = _address(request.remote_addr or "")
    if address is None or not address.is_loopback:
        return False
    return bool(current_app.config.get("TRUSTED_PROXIES")) or not request.headers.get("X-Forwarded-For")


def _session_identifier() -> str:
    """Flask-Login's session protection fingerprint, from the real client address (Flask-Login's own reads the
    first X-Forwarded-For entry, which any client can write)."""
    base = f"{request.remote_addr}|{request.headers.get('User-Agent')}"
    return hashlib.sha512(base.encode("utf-8")).hexdigest()


def init_app(app: Flask) -> None:
    """Apply TRUSTED_PROXIES to the app and base session protection on the address it yields."""
    from portal.extensions import login_manager

    wrap(app, app.config.get("TRUSTED_PROXIES"))
    login_manager._session_identifier_generator = _session_identifier  # no public hook in Flask-Login 0.6
