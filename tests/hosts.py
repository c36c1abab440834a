"""A test-local hosts table in front of the system resolver, for tests of what the portal does with DNS answers."""

from __future__ import annotations

import socket
from typing import Any, Callable

import pytest

Answer = list[str] | Callable[[], list[str]]


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> dict[str, Answer]:
    """name -> addresses (or a function giving the addresses of each lookup, to change the answer over time);
    names not in the table resolve as usual. `hosts.lookups` counts the lookups of each name."""
    table: dict[str, Answer] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not isinstance(name, str) or name not in table:
            return real(host, port, *args, **kwargs)
        entry = table[name]
        addresses = entry() if callable(entry) else entry
        port = int(port or 0)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)) if ":" in a
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table
