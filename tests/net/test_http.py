"""The hardened outbound client: it connects to the address the policy checked (DNS rebinding changes nothing),
keeps the original name for Host and TLS, follows no redirect, ignores proxy variables and cuts big bodies."""

from __future__ import annotations

import datetime
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.wrappers import Response

from portal.net import http as outbound
from portal.net import policy
from tests.helpers import LoopbackServer


def _ok(request: Any) -> Response:
    return Response("ok")


def _sequence(*answers: list[str]) -> Any:
    """A DNS answer that changes with each lookup (the last one repeats)."""
    calls = {"n": 0}

    def lookup() -> list[str]:
        calls["n"] += 1
        return answers[min(calls["n"], len(answers)) - 1]

    lookup.calls = calls  # type: ignore[attr-defined]
    return lookup


def test_connects_to_the_checked_address_when_the_answer_changes_after_the_check(hosts):
    with LoopbackServer(_ok) as server:
        # checked: 127.0.0.1 (where the server listens); any later lookup says 127.0.0.2 (nothing listens there)
        hosts["hook.test"] = lookup = _sequence(["127.0.0.1"], ["127.0.0.2"])
        answer = outbound.request(
            "POST", f"http://hook.test:{server.port}/hook", allow_private=True, timeout=5, max_bytes=100, data=b"{}"
        )
    assert (answer.status, answer.body, answer.address) == (200, b"ok", "127.0.0.1")
    assert lookup.calls["n"] == 1
    [received] = server.requests
    assert received["host"] == f"hook.test:{server.port}" and received["path"] == "/hook"


def test_rebinding_to_loopback_after_a_public_answer_never_reaches_loopback(hosts):
    with LoopbackServer(_ok) as server:
        hosts["hook.test"] = _sequence(["203.0.114.7"], ["127.0.0.1"])
        with pytest.raises(requests.RequestException):
            outbound.request(
                "POST",
                f"http://hook.test:{server.port}/hook",
                allow_private=False,
                timeout=0.5,
                max_bytes=100,
                data=b"{}",
            )
    assert server.requests == []


def test_refused_destination_is_never_contacted(hosts):
    with LoopbackServer(_ok) as server:
        hosts["hook.test"] = ["127.0.0.1"]
        with pytest.raises(policy.Refused) as refused:
            outbound.request("GET", f"http://hook.test:{server.port}/", allow_private=False, timeout=2, max_bytes=100)
    assert refused.value.kind == "private" and server.requests == []


def test_redirect_is_not_followed():
    def redirect(request: Any) -> Response:
        return Response("", status=302, headers={"Location": "/elsewhere"})

    with LoopbackServer(redirect) as server:
        answer = outbound.request(
            "GET", f"http://127.0.0.1:{server.port}/start", allow_private=True, timeout=5, max_bytes=100
        )
    assert answer.status == 302
    assert [r["path"] for r in server.requests] == ["/start"]


def test_big_body_is_cut_at_the_limit():
    def big(request: Any) -> Response:
        return Response((b"x" * 65536 for _ in range(512)), mimetype="text/plain")  # 32 MiB, streamed

    with LoopbackServer(big) as server:
        started = time.monotonic()
        answer = outbound.request(
            "GET", f"http://127.0.0.1:{server.port}/", allow_private=True, timeout=5, max_bytes=1000
        )
    assert len(answer.body) == 1000 and answer.truncated
    assert time.monotonic() - started < 3


def test_slow_body_is_cut_at_the_deadline():
    def trickle(request: Any) -> Response:
        def chunks() -> Any:
            for _ in range(50):
                yield b"."
                time.sleep(0.1)

        return Response(chunks(), mimetype="text/plain")

    with LoopbackServer(trickle) as server:
        started = time.monotonic()
        answer = outbound.request(
            "GET", f"http://127.0.0.1:{server.port}/", allow_private=True, timeout=0.5, max_bytes=1000
        )
    assert answer.truncated and len(answer.body) < 50
    assert time.monotonic() - started < 2


def test_proxy_variables_of_the_environment_are_ignored(monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    with LoopbackServer(_ok) as server:
        answer = outbound.request(
            "GET", f"http://127.0.0.1:{server.port}/", allow_private=True, timeout=5, max_bytes=100
        )
    assert answer.status == 200 and len(server.requests) == 1


# ---- TLS: SNI and the certificate are checked for the name in the URL, not for the pinned address ------------


def _tls_files(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for `name` signed by it (PEM files: ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@pytest.fixture
def tls_server(tmp_path: Path) -> Any:
    ca, cert, key = _tls_files(tmp_path, "hook.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    with LoopbackServer(_ok, ssl_context=context) as server:
        server.ca, server.sni = str(ca), names
        yield server


def test_tls_uses_the_original_name_for_sni_and_the_certificate(hosts, tls_server):
    hosts["hook.test"] = _sequence(["127.0.0.1"], ["127.0.0.2"])
    answer = outbound.request(
        "GET",
        f"https://hook.test:{tls_server.port}/",
        allow_private=True,
        timeout=5,
        max_bytes=100,
        verify=tls_server.ca,
    )
    assert (answer.status, answer.address) == (200, "127.0.0.1")
    assert tls_server.sni == ["hook.test"]
    assert tls_server.requests[0]["host"] == f"hook.test:{tls_server.port}"


def test_tls_certificate_for_another_name_is_refused(hosts, tls_server):
    hosts["other.test"] = ["127.0.0.1"]
    with pytest.raises(requests.exceptions.SSLError):
        outbound.request(
            "GET",
            f"https://other.test:{tls_server.port}/",
            allow_private=True,
            timeout=5,
            max_bytes=100,
            verify=tls_server.ca,
        )
    assert tls_server.requests == []
