"""What other areas plug into the send queue: gates asked before an item is dispatched, and listeners told
when an item is settled.

A gate is `fn(item, session) -> None | Hold | Skip`. `Hold(until, reason)` leaves the item queued with
`hold_reason` (tried again at `until`, or at the dispatcher's next pass when None); `Skip(reason)` ends it in
state "skipped" with `last_error = reason`, never sent. Campaigns register the opt-out gate and the
paused-campaign gate; number health the new-contact gate. Listeners (`on_settled`) get the item after it
reached sent / failed / skipped / cancelled and the change was committed; a listener that raises is logged and
never undoes the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal.models import QueuedSend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hold:
    """Keep the item queued: try again at `until` (None: at the dispatcher's next pass)."""

    until: datetime | None
    reason: str


@dataclass(frozen=True)
class Skip:
    """End the item without sending it (state "skipped", `last_error` = reason)."""

    reason: str


# A gate reads the item's fields (id, tenant_id, session_id, lane, chat_id, scheduled, origin, origin_id): a queue
# row, or the stream's Work snapshot of one.
Gate = Callable[[Any, Any], "Hold | Skip | None"]
Listener = Callable[[QueuedSend], None]

_gates: list[Gate] = []
_listeners: list[Listener] = []


def register_gate(fn: Gate) -> Gate:
    """Ask `fn(item, session)` before every dispatch (usable as a decorator; registering twice is a no-op)."""
    if fn not in _gates:
        _gates.append(fn)
    return fn


def on_settled(fn: Listener) -> Listener:
    """Call `fn(item)` after an item is settled (usable as a decorator; registering twice is a no-op)."""
    if fn not in _listeners:
        _listeners.append(fn)
    return fn


def ask_gates(item: Any, session: Any) -> Hold | Skip | None:
    """The first gate's Hold or Skip, or None when every gate lets the item go."""
    for gate in list(_gates):
        verdict = gate(item, session)
        if verdict is not None:
            return verdict
    return None


def has_listeners() -> bool:
    return bool(_listeners)


def has_gates() -> bool:
    return bool(_gates)


def settled(items: list[QueuedSend]) -> None:
    """Tell every listener about items that were just settled (after the commit)."""
    for item in items:
        for listener in list(_listeners):
            try:
                listener(item)
            except Exception:
                log.exception("send queue listener %r failed for item %s", listener, item.id)
