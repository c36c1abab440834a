"""Command line entry point."""

from __future__ import annotations

import socket
import subprocess
import sys

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


def test_module_runs_a_server_that_answers_ping():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wahasim", "--port", str(port), "--api-key", "cli-key", "--log-level", "WARNING"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answered() -> requests.Response | None:
            try:
                return requests.get(f"http://127.0.0.1:{port}/ping", timeout=1)
            except requests.ConnectionError:
                return None  # not listening yet

        ping = wait_for(answered, timeout=10)
        version = requests.get(
            f"http://127.0.0.1:{port}/api/server/version", headers={"X-Api-Key": "cli-key"}, timeout=2
        )
        assert (ping.json(), version.status_code) == ({"message": "pong"}, 200)
    finally:
        process.terminate()
        process.wait(timeout=5)
