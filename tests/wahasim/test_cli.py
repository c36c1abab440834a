"""Command line entry point."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from tests.helpers import ROOT as REPO
from tests.helpers import wait_for
from wahasim.__main__ import parse_args


def test_parse_args_maps_options_to_settings():
    settings = parse_args(
        [
            "--port",
            "3100",
            "--api-key",
            "k",
            "--engine",
            "webjs",
            "--core-single-session",
            "--start-default",
            "true",
            "--qr-first-seconds",
            "1",
            "--qr-next-seconds",
            "2",
            "--qr-max",
            "3",
            "--ack-delay",
            "0.1",
            "--auto-scan",
            "5",
            "--files-lifetime",
            "9",
            "--public-url",
            "http://waha:3000",
            "--version",
            "2025.12.3",
            "--status-wait",
            "2",
        ]
    )
    assert (settings.port, settings.api_key, settings.engine, settings.core_single_session) == (
        3100,
        "k",
        "WEBJS",
        True,
    )
    assert (settings.start_default, settings.qr_first_seconds, settings.qr_next_seconds, settings.qr_max) == (
        True,
        1,
        2,
        3,
    )
    assert (settings.ack_delay, settings.auto_scan, settings.files_lifetime) == (0.1, 5, 9)
    assert (settings.base_url, settings.version, settings.status_wait) == ("http://waha:3000", "2025.12.3", 2)


def test_parse_args_defaults_follow_waha_code():
    settings = parse_args([])
    assert (settings.engine, settings.start_default, settings.qr_max, settings.version) == (
        "GOWS",
        False,
        6,
        "2026.7.1",
    )
    assert settings.base_url == "http://127.0.0.1:3000"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cli_server() -> Iterator[int]:
    """`python -m wahasim` in its own process, with its defaults; yields its port once it answers."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wahasim", "--port", str(port), "--api-key", "cli-key", "--log-level", "WARNING"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answered() -> requests.Response | None:
        try:
            return requests.get(f"http://127.0.0.1:{port}/ping", timeout=1)
        except requests.ConnectionError:
            return None  # not listening yet

    try:
        wait_for(answered, timeout=10)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_module_runs_a_server_that_answers_ping(cli_server):
    ping = requests.get(f"http://127.0.0.1:{cli_server}/ping", timeout=2)
    version = requests.get(
        f"http://127.0.0.1:{cli_server}/api/server/version", headers={"X-Api-Key": "cli-key"}, timeout=2
    )
    assert (ping.json(), version.status_code) == ({"message": "pong"}, 200)


def test_module_server_keeps_the_connection_open_as_waha_does(cli_server):
    # WAHA (Node) answers many requests on one connection; the portal's pool counts on it.
    conn = http.client.HTTPConnection("127.0.0.1", cli_server, timeout=2)
    try:
        conn.request("GET", "/api/server/version", headers={"X-Api-Key": "cli-key"})
        first = conn.getresponse()
        first.read()
        opened = conn.sock
        conn.request("GET", "/ping")
        second = conn.getresponse()
        second.read()
        assert (first.status, first.getheader("Connection")) == (200, None)
        assert opened is not None and conn.sock is opened  # the same socket: no reconnect between the two
        assert second.status == 200
    finally:
        conn.close()
