"""TRUSTED_PROXIES: behind reverse proxies the limiter, the audit log, session protection and the loopback-only
views see the real client address; X-Forwarded-For from anyone else is ignored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from portal import proxy
from portal.config import load_settings
from portal.services import audit
from tests.helpers import csrf_token

PROXY = "10.0.0.5"  # the reverse proxy in front of the portal
CLIENT = "203.0.113.9"  # the browser or integrator behind it


@pytest.fixture
def trusted(app: Any) -> Iterator[Any]:
    """Run the test app with a TRUSTED_PROXIES value (the same wrapping create_app applies)."""
    saved_wsgi, saved_setting = app.wsgi_app, app.config.get("TRUSTED_PROXIES")

    def apply(raw: str) -> None:
        app.wsgi_app = saved_wsgi
        value = proxy.parse_trusted_proxies(raw)
        app.config["TRUSTED_PROXIES"] = value
        proxy.wrap(app, value)

    yield apply
    app.wsgi_app, app.config["TRUSTED_PROXIES"] = saved_wsgi, saved_setting


def _failed_api_call_ip(client: Any, tenant: Any, remote: str, forwarded: str | None = None) -> str | None:
    headers = {"Authorization": "Bearer wp_000000000000_not-a-real-token"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    assert client.get("/waha/sessions", headers=headers, environ_base={"REMOTE_ADDR": remote}).status_code == 401
    return audit.latest(action="auth.api_failed").ip


# ---- configuration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("1", 1),
        ("0", 0),
        ("10.0.0.0/8", ("10.0.0.0/8",)),
        ("10.0.0.5, 2001:db8::/32", ("10.0.0.5/32", "2001:db8::/32")),
    ],
)
def test_trusted_proxies_accepts_a_count_or_networks(raw: str, expected: Any) -> None:
    values, problems = load_settings({"TRUSTED_PROXIES": raw})
    assert problems == []
    assert values["TRUSTED_PROXIES"] == expected


@pytest.mark.parametrize("raw", ["proxy.local", "10.0.0.0/33", "-1", "99"])
def test_trusted_proxies_refuses_anything_else_in_words(raw: str) -> None:
    _, problems = load_settings({"TRUSTED_PROXIES": raw})
    assert len(problems) == 1 and problems[0].startswith("TRUSTED_PROXIES ")


def test_trusted_proxies_defaults_to_none() -> None:
    values, _ = load_settings({})
    assert values["TRUSTED_PROXIES"] == 0


# ---- which address counts ------------------------------------------------------------------------------------


def test_untrusted_x_forwarded_for_is_ignored(client: Any, tenant: Any) -> None:
    assert _failed_api_call_ip(client, tenant, "198.51.100.1", forwarded="192.0.2.1") == "198.51.100.1"


def test_one_trusted_proxy_yields_the_client_it_saw(client: Any, tenant: Any, trusted: Any) -> None:
    trusted("1")
    # The client wrote 6.6.6.6 itself; the proxy appended the address it really saw.
    assert _failed_api_call_ip(client, tenant, PROXY, forwarded=f"6.6.6.6, {CLIENT}") == CLIENT


def test_trusted_networks_skip_their_own_hops_only(client: Any, tenant: Any, trusted: Any) -> None:
    trusted("10.0.0.0/8")
    assert _failed_api_call_ip(client, tenant, PROXY, forwarded=f"6.6.6.6, {CLIENT}, 10.1.1.1") == CLIENT


def test_trusted_networks_ignore_headers_from_other_peers(client: Any, tenant: Any, trusted: Any) -> None:
    trusted("10.0.0.0/8")
    assert _failed_api_call_ip(client, tenant, "198.51.100.1", forwarded="10.1.1.1") == "198.51.100.1"


def test_rate_limiter_counts_each_client_behind_the_proxy(client: Any, tenant: Any, trusted: Any) -> None:
    trusted("1")
    token = csrf_token(client, "/account/forgot")

    def forgot(address: str) -> int:
        return client.post(
            "/account/forgot",
            data={"email": "x@example.com", "csrf_token": token},
            headers={"X-Forwarded-For": address},
            environ_base={"REMOTE_ADDR": PROXY},
        ).status_code

    statuses = [forgot(CLIENT) for _ in range(11)]
    assert statuses[-1] == 429  # the limit is 10 per minute per address
    assert forgot("203.0.113.77") != 429  # another client behind the same proxy is not limited


def test_metrics_refuse_the_world_behind_a_local_proxy(app: Any, client: Any, trusted: Any) -> None:
    # Without TRUSTED_PROXIES a request relayed by a proxy on this machine is not a loopback caller.
    assert (
        client.get(
            "/metrics", headers={"X-Forwarded-For": CLIENT}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
        ).status_code
        == 403
    )
    trusted("1")
    assert (
        client.get(
            "/metrics", headers={"X-Forwarded-For": CLIENT}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
        ).status_code
        == 403
    )
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200


def test_session_protection_uses_the_real_address_not_a_forged_header(app: Any, login: Any, owner: Any) -> None:
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    login(owner, browser)
    assert browser.get("/sessions/").status_code == 200
    # The same cookie from another address, claiming to be the first one in X-Forwarded-For, signs nobody in.
    stolen = browser.get(
        "/sessions/", headers={"X-Forwarded-For": "192.0.2.10"}, environ_base={"REMOTE_ADDR": "198.51.100.66"}
    )
    assert stolen.status_code == 302 and "/login" in stolen.headers["Location"]
