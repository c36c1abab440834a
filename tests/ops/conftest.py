"""Fixtures for the operations tests: a second WAHA simulator, closed ports, and apps whose dependencies are down."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from portal import create_app


def closed_port() -> int:
    """A loopback port nothing listens on (bound once by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def second_sim() -> Iterator[Any]:
    """Another WAHA simulator on its own port, with its own API key."""
    from wahasim.testing import SimServer

    server = SimServer(api_key="sim-two-key", engine="GOWS", ack_delay=0.05)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def app_with(app: Flask, _environ: dict[str, str], sim: Any) -> Iterator[Callable[..., Flask]]:
    """Build another app over the test environment with some variables changed.

    The Redis holder is process-wide, so the test app's Redis connection is put back afterwards.
    """
    from portal.extensions import redis_store

    def build(**overrides: str) -> Flask:
        return create_app(dict(_environ, WAHA_BASE_URL=sim.url, **overrides))

    yield build
    redis_store.init_app(app)
