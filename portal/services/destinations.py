"""Where the portal (or WAHA on the portal's behalf) may be sent: one rule for every outbound URL a tenant gives.

Tenant webhook endpoints, a session's own webhook URL, media sent by URL and the proxy in a session's config all
pass `portal.net.policy`: strict form, no credentials in the URL, and every resolved address public. Private and
loopback addresses are allowed only with WEBHOOK_ALLOW_PRIVATE=true (development); then a name that does not
resolve is accepted too (there is nothing to check), and fails when it is used. Refusals are `validation_error`
with the field; a refusal for a non-public address says "non-public address" (the web pages key their hint on it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app

from portal.i18n import N_, N_f
from portal.net import policy
from portal.services.errors import Invalid

PROXY_SCHEMES = ("http", "https", "socks4", "socks5")


def allow_private() -> bool:
    """Whether private and loopback destinations are allowed (WEBHOOK_ALLOW_PRIVATE)."""
    return bool(current_app.config.get("WEBHOOK_ALLOW_PRIVATE"))


def problem(url: Any, *, schemes: tuple[str, ...] = policy.SCHEMES, path_allowed: bool = True) -> str | None:
    """Why url may not be used as a destination (None when it may); the text completes "This URL ..."."""
    try:
        policy.check(url, allow_private=allow_private(), schemes=schemes, path_allowed=path_allowed)
    except policy.Refused as refused:
        if refused.kind == "unresolvable" and allow_private():
            return None
        return refused.reason
    return None


def clean_url(url: Any, field: str, label: str = "URL") -> str:
    """url as the portal will use it (host in ASCII form); Invalid(field) when the policy refuses it."""
    if not isinstance(url, str) or not url.strip():
        raise Invalid.field(field, N_f("Give the %(label)s.", label=label))
    url = url.strip()
    try:
        checked = policy.check(url, allow_private=allow_private())
    except policy.Refused as refused:
        if refused.kind == "unresolvable" and allow_private():
            return policy.parse(url)[0]
        raise Invalid.field(field, N_f("This %(label)s %(reason)s.", label=label, reason=refused.reason)) from None
    return checked.url


def clean_proxy(proxy: Any, field: str = "config.proxy") -> dict[str, Any] | None:
    """A WAHA session proxy ({"server": "host:port", "username", "password"}) whose server passes the policy."""
    if proxy is None:
        return None
    if not isinstance(proxy, dict) or set(proxy) - {"server", "username", "password"}:
        raise Invalid.field(field, N_("The proxy must be an object with server, username and password."))
    server = proxy.get("server")
    if not isinstance(server, str) or not server.strip():
        raise Invalid.field(f"{field}.server", N_("Give the proxy server as host:port."))
    for key in ("username", "password"):
        if proxy.get(key) is not None and not isinstance(proxy[key], str):
            raise Invalid.field(f"{field}.{key}", N_f("The proxy %(key)s must be text.", key=key))
    server = server.strip()
    given_scheme = "://" in server
    url = server if given_scheme else f"http://{server}"
    try:
        canonical, _scheme, host, port = policy.parse(url, schemes=PROXY_SCHEMES, path_allowed=False)
        if urlsplit(url).port is None:
            raise policy.Refused("must name the port (host:port)")
        policy.check(url, allow_private=allow_private(), schemes=PROXY_SCHEMES, path_allowed=False)
    except policy.Refused as refused:
        if not (refused.kind == "unresolvable" and allow_private()):
            raise Invalid.field(
                f"{field}.server", N_f("This proxy server %(reason)s.", reason=refused.reason)
            ) from None
    shown = f"[{host}]" if ":" in host else host
    return {**proxy, "server": canonical.rstrip("/") if given_scheme else f"{shown}:{port}"}
