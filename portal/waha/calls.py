"""What every WAHA endpoint method shares: the observer decorator, path segments and the result of a send.

`WahaClient` (``portal.waha.client``) and its endpoint mixins (``portal.waha.chats``) build on these, so the
mixins need not import the client.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True)
class SendResult:
    """Outcome of a send: the normalised WhatsApp message id and WAHA's raw (engine-specific) response."""

    message_id: str
    raw: dict


def _observed(method: Any) -> Any:
    """Report each public call to the client's observer as (name, "ok" or error class name, seconds)."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            self._notify(name, outcome, time.perf_counter() - started)

    return wrapper


def _segment(value: str) -> str:
    """One path segment, every reserved character escaped ("@" as %40, "/" as %2F)."""
    return quote(value, safe="")
