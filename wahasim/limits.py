"""WhatsApp's 2026 limits on reaching new contacts: the reach-out timelock and new-chat message capping.

The WAHA side (waha-py 2026.9.2, generated from WAHA's OpenAPI document): `GET /api/sessions/{s}/timelock` answers
`ReachoutTimelockData` (`isActive`, `timeEnforcementEnds` in unix seconds, `enforcementType`) and
`GET /api/sessions/{s}/capping` answers `MessageCappingData` (`cappingStatus` NONE / FIRST_WARNING /
SECOND_WARNING / CAPPED, `totalQuota` (-1: no cap), `usedQuota`, `cycleStart`, `cycleEnd`, `mvStatus`,
`oteStatus`). The session's `me` carries both once they are known (`reachoutTimelock`, `messageCapping`), and a
timelock shows in a WORKING `session.status` event's `data`. A send to a new contact (a chat the session has no
message with) fails while a timelock is active (WhatsApp error 463) or the account is CAPPED (475), in WAHA's
500 shape; the session stays WORKING and messages to known chats go out.

Control hooks (`/_sim/sessions/{s}/timelock`, `/_sim/sessions/{s}/capping`) switch them on and off.

`LimitsMixin` is part of `Simulator`; every public method takes the simulator's lock.
"""

from __future__ import annotations

import copy
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import ControlError, SimError

CAPPING_STATUSES = ("NONE", "FIRST_WARNING", "SECOND_WARNING", "CAPPED")
DEFAULT_ENFORCEMENT = "RESTRICT_ALL_COMPANIONS"
CYCLE_SECONDS = 30 * 24 * 3600


def thrown(message: str, path: str) -> SimError:
    """WAHA's 500 body for an error thrown while handling the request (CONTRACT section 4)."""
    return SimError(
        500,
        {
            "statusCode": 500,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "exception": {"message": message, "name": "Error", "stack": f"Error: {message}\n    at send"},
            "request": {"path": path, "method": "POST", "body": {}, "query": {}},
            "version": {"version": "2026.9.2", "engine": "GOWS", "tier": "PLUS"},
        },
    )


class LimitsMixin:
    """Timelock and capping state per session, their endpoints, their effect on sends and their controls."""

    if TYPE_CHECKING:  # provided by Simulator
        lock: threading.RLock
        sessions: dict[str, Any]

        def _working(self, name: Any, expected: Any = ...) -> Any: ...
        def _control_session(self, name: str) -> Any: ...
        def _emit(self, s: Any, event: str, payload: dict) -> dict: ...
        def _with_wait(self, fn: Any) -> Any: ...

    # ---------------------------------------------------------------- state

    @staticmethod
    def _limits(s: Any) -> dict:
        return s.limits

    def _timelock_of(self, s: Any) -> dict:
        known = self._limits(s)["timelock"]
        if known is None:
            return {"isActive": False, "timeEnforcementEnds": 0, "enforcementType": DEFAULT_ENFORCEMENT}
        value = copy.deepcopy(known)
        if value["isActive"] and value["timeEnforcementEnds"] <= time.time():
            value["isActive"] = False  # the restriction lifted by itself
        return value

    def _capping_of(self, s: Any) -> dict:
        known = self._limits(s)["capping"]
        if known is not None:
            return copy.deepcopy(known)
        now = int(time.time())
        return {
            "cappingStatus": "NONE",
            "totalQuota": -1,
            "usedQuota": 0,
            "cycleStart": now,
            "cycleEnd": now + CYCLE_SECONDS,
            "mvStatus": "NOT_ELIGIBLE",
            "oteStatus": "NOT_ELIGIBLE",
        }

    def limits_for_me(self, s: Any) -> dict:
        """What `me` carries of the limits: each one once it was set (null before, as WAHA)."""
        limits = self._limits(s)
        extra: dict[str, Any] = {}
        if limits["timelock"] is not None:
            extra["reachoutTimelock"] = self._timelock_of(s)
        if limits["capping"] is not None:
            extra["messageCapping"] = self._capping_of(s)
        return extra

    # ---------------------------------------------------------------- WAHA API

    def timelock(self, name: str) -> dict:
        """GET /api/sessions/{session}/timelock (session WORKING)."""
        return self._with_wait(lambda: self._timelock_of(self._working(name)))

    def capping(self, name: str) -> dict:
        """GET /api/sessions/{session}/capping (session WORKING)."""
        return self._with_wait(lambda: self._capping_of(self._working(name)))

    @staticmethod
    def _known_chat(s: Any, chat_id: str) -> bool:
        return any(r["chatId"] == chat_id for r in s.outbox.values()) or any(
            r["chatId"] == chat_id for r in s.inbox.values()
        )

    def refuse_new_contact(self, s: Any, chat_id: str, path: str) -> None:
        """Raise WhatsApp's refusal when `chat_id` is a new contact and a limit applies; count a new chat."""
        limits = self._limits(s)
        if (limits["timelock"] is None and limits["capping"] is None) or chat_id.endswith("@g.us"):
            return
        if self._known_chat(s, chat_id):
            return
        if self._timelock_of(s)["isActive"]:
            raise thrown("failed to send message: server returned error 463 (reachout timelock)", path)
        capping = self._limits(s)["capping"]
        if capping is not None and capping["cappingStatus"] == "CAPPED":
            raise thrown("failed to send message: server returned error 475 (new chat message cap reached)", path)
        if capping is not None and capping["totalQuota"] >= 0:
            capping["usedQuota"] += 1

    # ---------------------------------------------------------------- control hooks

    def set_timelock(self, name: str, active: bool, seconds: int = 3600, kind: str | None = None) -> dict:
        """Start (for `seconds`) or lift the account's reach-out timelock; a WORKING session tells it in a
        `session.status` event, as WAHA does."""
        if seconds <= 0:
            raise ControlError(400, "seconds must be positive")
        with self.lock:
            s = self._control_session(name)
            value = {
                "isActive": bool(active),
                "timeEnforcementEnds": int(time.time()) + seconds if active else 0,
                "enforcementType": kind or DEFAULT_ENFORCEMENT,
            }
            self._limits(s)["timelock"] = value
            if s.status == "WORKING":
                payload = {
                    "name": s.name,
                    "status": "WORKING",
                    "statuses": [{"status": "WORKING", "timestamp": int(time.time() * 1000)}],
                    "data": {"reachoutTimelock": copy.deepcopy(value)},
                }
                self._emit(s, "session.status", payload)
            return copy.deepcopy(value)

    def set_capping(
        self, name: str, status: str, total: int = 1000, used: int | None = None, cycle_seconds: int = CYCLE_SECONDS
    ) -> dict:
        """Set the account's new-chat capping status (and quota); NONE with total -1 lifts it."""
        if status not in CAPPING_STATUSES:
            raise ControlError(400, f"status must be one of {', '.join(CAPPING_STATUSES)}")
        if cycle_seconds <= 0:
            raise ControlError(400, "cycleSeconds must be positive")
        with self.lock:
            s = self._control_session(name)
            now = int(time.time())
            if used is None:
                share = {"NONE": 0, "FIRST_WARNING": 0.8, "SECOND_WARNING": 0.9, "CAPPED": 1}[status]
                used = int(max(total, 0) * share)
            value = {
                "cappingStatus": status,
                "totalQuota": total,
                "usedQuota": used,
                "cycleStart": now,
                "cycleEnd": now + cycle_seconds,
                "mvStatus": "NOT_ELIGIBLE",
                "oteStatus": "NOT_ELIGIBLE",
            }
            self._limits(s)["capping"] = value
            return copy.deepcopy(value)
