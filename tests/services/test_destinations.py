"""The destination policy at every door a tenant can name an outbound URL: media sent by URL, webhook endpoints,
a session's own webhook URL and the WAHA proxy of a session. Private destinations are refused (the test app allows
them by default; `public_only` switches that off, as in production)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import WahaSession, WebhookEndpoint
from portal.services import forwarding, messages, sessions
from portal.services.errors import Invalid
from tests.builders import TEST_ACTOR

# Every form the review used to reach the portal's own machine or network, and URLs with credentials.
REFUSED_URLS = [
    "http://127.1/a.png",
    "http://2130706433/a.png",
    "http://0x7f000001/a.png",
    "http://0177.0.0.1/a.png",
    "http://0/a.png",
    "http://127.0.0.1/a.png",
    "http://localhost/a.png",
    "http://localhost./a.png",
    "http://LOCALHOST/a.png",
    "http://ip6-localhost/a.png",
    "http://app.localhost/a.png",
    "http://[::1]/a.png",
    "http://[::127.0.0.1]/a.png",
    "http://[::ffff:127.0.0.1]/a.png",
    "http://[::ffff:169.254.169.254]/a.png",
    "http://[2002:7f00:1::]/a.png",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/a.png",  # 6to4 of 169.254.169.254
    "http://[64:ff9b::7f00:1]/a.png",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a00:1]/a.png",  # NAT64 of 10.0.0.1
    "http://[fe80::1]/a.png",
    "http://[fc00::1]/a.png",
    "http://[ff02::1]/a.png",
    "http://[::]/a.png",
    "http://10.0.0.1/a.png",
    "http://172.16.5.4/a.png",
    "http://192.168.1.1/a.png",
    "http://169.254.169.254/latest/meta-data",
    "http://100.64.0.1/a.png",  # CGNAT
    "http://224.0.0.1/a.png",
    "http://0.0.0.0/a.png",
    "http://255.255.255.255/a.png",
    "http://198.18.0.1/a.png",
    "http://user:pw@example.org/a.png",
    "http://user@example.org/a.png",
    "http://example\uff0eorg/a.png",  # full-width dot
    "http://127\u30020\u30020\u30021/a.png",  # ideographic full stops
    "http://example.org\\@127.0.0.1/a.png",
    "http://127.0.0.1:0/a.png",
    "file:///etc/passwd",
    "gopher://example.org/",
]


@pytest.fixture
def public_only(app: Any) -> Any:
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    yield
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True


def _field(error: pytest.ExceptionInfo[Invalid]) -> str:
    assert error.value.code == "validation_error"
    return error.value.details["fields"][0]["field"]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_media_url_to_a_non_public_or_malformed_address_is_refused(tenant, public_only, url):
    with pytest.raises(Invalid) as error:
        messages.clean_media({"kind": "image", "url": url, "mimetype": "image/png"})
    assert _field(error) == "media.url"


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_endpoint_url_to_a_non_public_or_malformed_address_is_refused(tenant, public_only, url):
    with pytest.raises(Invalid) as error:
        forwarding.create_endpoint(tenant, TEST_ACTOR, url=url)
    assert _field(error) == "url"
    assert db.session.scalar(select(func.count(WebhookEndpoint.id))) == 0


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_session_webhook_url_to_a_non_public_or_malformed_address_is_refused(tenant, public_only, url):
    with pytest.raises(Invalid) as error:
        sessions.create_session(tenant, TEST_ACTOR, name="Hooked", webhook_url=url)
    assert _field(error) == "webhook_url"
    assert db.session.scalar(select(func.count(WahaSession.id))) == 0


@pytest.mark.parametrize(
    "server",
    [
        "127.0.0.1:3128",
        "localhost:3128",
        "127.1:3128",
        "[::1]:3128",
        "10.0.0.5:8080",
        "169.254.169.254:80",
        "http://192.168.0.1:3128",
        "socks5://127.0.0.1:1080",
        "user:pw@proxy.example.org:3128",
        "proxy.example.org",
        "http://proxy.example.org:3128/path",
    ],
)
def test_session_proxy_on_a_non_public_or_malformed_server_is_refused(tenant, public_only, hosts, server):
    hosts["proxy.example.org"] = ["203.0.114.7"]
    with pytest.raises(Invalid) as error:
        sessions.create_session(tenant, TEST_ACTOR, name="Proxied", config={"proxy": {"server": server}})
    assert _field(error) == "config.proxy.server"
    assert db.session.scalar(select(func.count(WahaSession.id))) == 0


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["10.1.2.3"],
        ["::1"],
        ["93.184.216.34", "192.168.1.1"],
        ["2606:2800:220:1::1", "fe80::1"],
        ["::ffff:10.0.0.1"],
        ["100.100.1.1"],
    ],
)
def test_name_resolving_to_any_non_public_address_is_refused(tenant, public_only, hosts, addresses):
    hosts["files.example.org"] = addresses
    for call in (
        lambda: messages.clean_media(
            {"kind": "image", "url": "https://files.example.org/a.png", "mimetype": "image/png"}
        ),
        lambda: forwarding.create_endpoint(tenant, TEST_ACTOR, url="https://files.example.org/hook"),
        lambda: sessions.create_session(
            tenant, TEST_ACTOR, name="Hooked", webhook_url="https://files.example.org/hook"
        ),
    ):
        with pytest.raises(Invalid) as error:
            call()
        assert "non-public address" in error.value.message


def test_name_that_cannot_be_resolved_is_refused_in_production(tenant, public_only):
    with pytest.raises(Invalid) as error:
        forwarding.create_endpoint(tenant, TEST_ACTOR, url="https://no-such-host.invalid/hook")
    assert "cannot be resolved" in error.value.message


def test_public_destinations_are_accepted_everywhere(tenant, sim, public_only, hosts):
    hosts["files.example.org"] = ["93.184.216.34", "2606:2800:220:1::1"]
    hosts["proxy.example.org"] = ["203.0.114.7"]
    _kind, file, _stored, _caption = messages.clean_media(
        {"kind": "image", "url": "https://files.example.org/a.png", "mimetype": "image/png"}
    )
    assert file["url"] == "https://files.example.org/a.png"
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url="https://files.example.org:8443/hook?x=1")
    assert endpoint.url == "https://files.example.org:8443/hook?x=1"
    session = sessions.create_session(
        tenant,
        TEST_ACTOR,
        name="Hooked",
        webhook_url="http://93.184.216.34/h",
        config={"proxy": {"server": "proxy.example.org:3128", "username": "u", "password": "p"}},
    )
    assert session.webhook_url == "http://93.184.216.34/h"
    assert session.config["proxy"] == {"server": "proxy.example.org:3128", "username": "u", "password": "p"}


def test_internationalised_host_is_stored_in_ascii_form(tenant, public_only, hosts):
    hosts["xn--bcher-kva.example"] = ["93.184.216.34"]
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url="https://b\u00fccher.example/hook")
    assert endpoint.url == "https://xn--bcher-kva.example/hook"


def test_private_destinations_are_allowed_when_the_operator_allows_them(tenant, sim):
    session = sessions.create_session(
        tenant,
        TEST_ACTOR,
        name="Dev",
        webhook_url="http://127.0.0.1:9/h",
        config={"proxy": {"server": "localhost:3128"}},
    )
    assert session.webhook_url == "http://127.0.0.1:9/h"
    # the form rules hold even then
    with pytest.raises(Invalid):
        messages.clean_media({"kind": "image", "url": "http://127.1/a.png", "mimetype": "image/png"})
