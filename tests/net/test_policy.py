"""The destination policy by itself: which addresses count as public, and what a checked URL carries."""

from __future__ import annotations

import pytest

from portal.net import policy


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.255",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.251",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.1",
        "::",
        "::1",
        "::127.0.0.1",
        "::8.8.8.8",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "fe80::1",
        "fe80::1%1",
        "fec0::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "ff0e::1",
        "2001:db8::1",
        "2001::1",
        "100::1",
        "2002:7f00:1::",
        "2002:a00:1::",
        "2002:a9fe:a9fe::",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "3fff::1",
    ],
)
def test_non_public_addresses_are_named(address):
    assert policy.address_problem(address) is not None


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses_pass(address):
    assert policy.address_problem(address) is None


def test_checked_url_carries_the_addresses_that_passed():
    def resolve(host, port):
        assert (host, port) == ("hooks.example.org", 8443)
        return ["93.184.216.34", "2606:2800:220:1::1", "93.184.216.34"]

    destination = policy.check("https://Hooks.Example.org:8443/x?y=1", allow_private=False, resolve=resolve)
    assert destination.addresses == ("93.184.216.34", "2606:2800:220:1::1")
    assert (destination.host, destination.port, destination.host_header) == (
        "hooks.example.org",
        8443,
        "hooks.example.org:8443",
    )
    assert destination.url == "https://hooks.example.org:8443/x?y=1"


def test_ipv4_mapped_answer_is_checked_as_ipv4():
    with pytest.raises(policy.Refused) as refused:
        policy.check("http://a.example.org/", allow_private=False, resolve=lambda h, p: ["::ffff:127.0.0.1"])
    assert refused.value.kind == "private" and "127.0.0.1" in refused.value.reason


def test_local_names_resolved_by_the_system_are_refused():
    for url in ("http://localhost:8080/", "http://ip6-localhost/"):
        with pytest.raises(policy.Refused) as refused:
            policy.check(url, allow_private=False)
        assert refused.value.kind == "private"


def test_system_resolver_answers_for_localhost_are_loopback():
    # the resolver step itself, without the name rule in front of it
    assert all(policy.address_problem(a) for a in policy.system_resolver("localhost", 80))
