"""In-memory WAHA: sessions, their state machine, messages, media files and events.

Every public method takes the one lock, so the Flask views, the timer thread and
the test helper can call in from any thread. HTTP concerns (headers, PNG vs
JSON) stay in the views; this module answers with data or raises SimError.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import logging
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from . import errors, shapes
from .chats import ChatsMixin
from .errors import ControlError, SimError
from .ids import event_id, pairing_code, qr_value, session_name, wa_message_id
from .images import qr_png, screen_png
from .limits import LimitsMixin
from .passkey import PasskeyMixin
from .settings import Settings
from .timers import Scheduler
from .validation import clean_create, clean_update
from .webhooks import Dispatcher

log = logging.getLogger("wahasim")

STOPPED, STARTING, SCAN_QR_CODE, WORKING, FAILED = "STOPPED", "STARTING", "SCAN_QR_CODE", "WORKING", "FAILED"
DEFAULT_MIMETYPES = {
    "image": "image/jpeg",
    "file": "application/octet-stream",
    "voice": "audio/ogg; codecs=opus",
    "video": "video/mp4",
}
ACK_DEDUP_SECONDS = 60.0


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Session:
    """One WAHA session: stored config plus its runtime state."""

    name: str
    config: dict | None
    apps: list | None
    status: str = STOPPED
    auth: dict | None = None  # the paired account; kept across stop/restart like WAHA's auth store
    unlinked: bool = False  # the phone removed this device while the session kept looking WORKING
    history: list = field(default_factory=list)
    run_id: int = 0  # bumped on every transition that must cancel pending timers
    qr_value: str | None = None
    qr_count: int = 0
    code: str | None = None
    activity: int | None = None
    outbox: OrderedDict = field(default_factory=OrderedDict)
    by_client_id: dict = field(default_factory=dict)
    inbox: OrderedDict = field(default_factory=OrderedDict)
    acks_seen: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    contacts: dict = field(default_factory=dict)  # chat id -> {name, pushname, picture, lid}
    reads: list = field(default_factory=list)  # what messages/read marked read: {chatId, ids, at}
    typing: list = field(default_factory=list)  # startTyping/stopTyping calls: {chatId, state, at}
    deleted_chats: list = field(default_factory=list)  # DELETE /api/{s}/chats/{chatId} calls: {chatId, at}
    # WhatsApp's limits on the account (wahasim.limits): kept across stop/restart, like the account itself
    limits: dict = field(default_factory=lambda: {"timelock": None, "capping": None})
    passkey: dict | None = None  # the pending passkey pairing (wahasim.passkey)

    @property
    def running(self) -> bool:
        return self.status != STOPPED


class Simulator(ChatsMixin, LimitsMixin, PasskeyMixin):
    """The whole fake server state. Thread-safe; one instance per app."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.lock = threading.RLock()
        self.scheduler = Scheduler()
        self.dispatcher = Dispatcher(
            self.scheduler,
            version=self.settings.version,
            timeout=self.settings.webhook_timeout,
            workers=self.settings.webhook_workers,
        )
        self.sessions: dict[str, Session] = {}
        self.absent_numbers: set[str] = set()  # numbers check-exists reports as not on WhatsApp (control API)
        self.start_timestamp = now_ms()
        self._start_monotonic = time.monotonic()
        self.latency_ms = 0
        self.fail_next_count = 0
        self.fail_next_status = 503
        self.auto_read = self.settings.auto_read
        self.events: deque = deque(maxlen=2000)
        self.pictures: dict[str, bytes] = {}  # profile pictures served under /_sim/pictures/
        self._seq = itertools.count()  # arrival order of messages (timestamps are whole seconds)

    # ------------------------------------------------------------------ helpers

    @property
    def engine(self) -> str:
        return self.settings.engine

    def close(self) -> None:
        """Stop the timer and webhook threads."""
        self.scheduler.stop()
        self.dispatcher.stop()

    def environment(self) -> dict:
        """`environment` of webhook envelopes and the body of /api/server/version."""
        return {
            "version": self.settings.version,
            "engine": self.engine,
            "tier": self.settings.effective_tier,
            "browser": self.settings.browser,
            "platform": "linux/x64",
            "worker": {"id": None},
        }

    def _only_default(self, name: str) -> None:
        if self.settings.core_single_session and name != "default":
            raise errors.only_default(name)

    def _get(self, name: str) -> Session:
        session = self.sessions.get(name)
        if session is None:
            raise errors.session_not_found()
        return session

    def _me(self, s: Session) -> dict | None:
        if s.status == WORKING and s.auth:
            return {**copy.deepcopy(s.auth), **self.limits_for_me(s)}
        return None

    def _engine_info(self, s: Session) -> dict:
        if not s.running:
            return {"engine": self.engine}
        if self.engine == "GOWS":
            return {"engine": "GOWS", "grpc": {"client": "READY", "stream": "READY"}}
        if self.engine == "WEBJS":
            state = "CONNECTED" if s.status == WORKING else "UNPAIRED"
            return {"engine": "WEBJS", "WWebVersion": "2.3000.1023204200", "state": state}
        return {"engine": "NOWEB", "state": "CONNECTED" if s.status == WORKING else "CONNECTING"}

    def _info(self, s: Session, detailed: bool, expand_apps: bool = False) -> dict:
        info: dict[str, Any] = {
            "name": s.name,
            "status": s.status,
            "config": copy.deepcopy(s.config),
            "me": self._me(s),
            "assignedWorker": "",
            "presence": "online" if s.status == WORKING else None,
            "timestamps": {"activity": s.activity},
        }
        if expand_apps or s.apps is not None:
            info["apps"] = copy.deepcopy(s.apps)
        if detailed:
            info["engine"] = self._engine_info(s)
        return info

    def _with_wait(self, fn):
        """Run fn under the lock; on a 'not ready' 422 retry until --status-wait runs out."""
        deadline = time.monotonic() + max(0.0, self.settings.status_wait)
        while True:
            try:
                with self.lock:
                    return fn()
            except SimError as exc:
                if not exc.retryable or time.monotonic() >= deadline:
                    raise
            time.sleep(0.05)

    def _working(self, name, expected=(WORKING,)) -> Session:
        """Session lookup of the send/check/QR endpoints: 422 bodies without statusCode."""
        if name is None or name == "":
            raise errors.session_required()
        name = str(name)
        self._only_default(name)
        s = self.sessions.get(name)
        if s is None:
            raise errors.does_not_exist(name)
        if s.status not in expected:
            raise errors.status_mismatch(name, s.status, list(expected))
        return s

    def _running(self, name: str) -> Session:
        """Direct lookup used by /me, /screenshot, request-code: 404 unless running."""
        self._only_default(name)
        s = self.sessions.get(name)
        if s is None or not s.running:
            raise errors.not_running(name)
        return s

    # ------------------------------------------------------------------ events

    def _emit(self, s: Session, event: str, payload: dict) -> dict:
        envelope = {"id": event_id(), "timestamp": now_ms(), "event": event, "session": s.name}
        metadata = (s.config or {}).get("metadata")
        if metadata is not None:
            envelope["metadata"] = copy.deepcopy(metadata)
        envelope["me"] = self._me(s)
        envelope["payload"] = payload
        envelope["engine"] = self.engine
        envelope["environment"] = self.environment()
        self.events.append(envelope)
        webhooks = copy.deepcopy((s.config or {}).get("webhooks") or [])
        self.dispatcher.submit(s.name, webhooks, envelope)
        return envelope

    def _set_status(self, s: Session, status: str, data: dict | None = None) -> None:
        if status == s.status and status in (WORKING, STOPPED):
            return  # WAHA collapses repeated WORKING; STOPPED twice is a no-op
        s.status = status
        if status not in ("PASSKEY_REQUIRED", "PASSKEY_CONFIRMATION_REQUIRED"):
            s.passkey = None
        s.history.append({"status": status, "timestamp": now_ms()})
        del s.history[:-3]
        payload: dict[str, Any] = {"name": s.name, "status": status, "statuses": copy.deepcopy(s.history)}
        if data is not None:
            payload["data"] = data  # 2026.7.1: the passkey statuses' challenge or confirmation code
        self._emit(s, "session.status", payload)

    # ------------------------------------------------------------------ state machine

    def _start(self, s: Session) -> None:
        s.run_id += 1
        run = s.run_id
        if s.unlinked:
            s.auth = None
            s.unlinked = False
        s.qr_value, s.qr_count, s.code = None, 0, None
        self._set_status(s, STARTING)
        self.scheduler.call_later(self.settings.starting_delay, lambda: self._booted(s.name, run))

    def _alive(self, name: str, run: int) -> Session | None:
        s = self.sessions.get(name)
        if s is None or s.run_id != run:
            return None
        return s

    def _booted(self, name: str, run: int) -> None:
        with self.lock:
            s = self._alive(name, run)
            if s is None or s.status != STARTING:
                return
            if s.auth:
                self._set_status(s, WORKING)
            else:
                self._show_qr(s)

    def _show_qr(self, s: Session) -> None:
        run = s.run_id
        s.qr_count += 1
        count = s.qr_count
        s.qr_value = qr_value()
        self._set_status(s, SCAN_QR_CODE)
        lifetime = self.settings.qr_first_seconds if count == 1 else self.settings.qr_next_seconds
        self.scheduler.call_later(lifetime, lambda: self._qr_expired(s.name, run, count))
        if count == 1 and self.settings.auto_scan is not None:
            self.scheduler.call_later(self.settings.auto_scan, lambda: self._auto_scan(s.name, run))

    def _qr_expired(self, name: str, run: int, count: int) -> None:
        with self.lock:
            s = self._alive(name, run)
            if s is None or s.status != SCAN_QR_CODE or s.qr_count != count:
                return
            if count >= self.settings.qr_max:
                s.run_id += 1
                s.qr_value, s.code = None, None
                self._set_status(s, FAILED)
            else:
                self._show_qr(s)

    def _auto_scan(self, name: str, run: int) -> None:
        with self.lock:
            s = self._alive(name, run)
            if s is not None and s.status == SCAN_QR_CODE:
                self._login(s, self.settings.auto_scan_phone, None)

    def _login(self, s: Session, phone: str, push_name: str | None) -> None:
        digits = re.sub(r"\D", "", str(phone)) or self.settings.auto_scan_phone
        s.run_id += 1  # cancels QR rotation
        s.auth = {"id": f"{digits}@c.us", "pushName": push_name or "WAHA Simulator"}
        s.unlinked = False
        s.qr_value, s.code = None, None
        self._set_status(s, WORKING)

    def _stop(self, s: Session) -> None:
        s.run_id += 1
        s.qr_value, s.code = None, None
        self._set_status(s, STOPPED)

    # ------------------------------------------------------------------ sessions API

    def list_sessions(self, all_: bool, expand_apps: bool = False) -> list[dict]:
        with self.lock:
            return [
                self._info(s, detailed=False, expand_apps=expand_apps)
                for s in self.sessions.values()
                if all_ or s.status != STOPPED
            ]

    def get_session(self, name: str, expand_apps: bool = False) -> dict:
        with self.lock:
            self._only_default(name)
            return self._info(self._get(name), detailed=True, expand_apps=expand_apps)

    def create_session(self, body) -> dict:
        data = clean_create(body)
        with self.lock:
            name = data.get("name") or session_name()
            self._only_default(name)
            if name in self.sessions:
                raise errors.already_exists(name)
            s = Session(name=name, config=data["config"], apps=data["apps"])
            s.history.append({"status": STOPPED, "timestamp": now_ms()})
            self.sessions[name] = s
            start = data.get("start")
            if start is None:
                start = self.settings.start_default
            if start:
                self._start(s)
            return self._info(s, detailed=True)

    def update_session(self, name: str, body) -> dict:
        data = clean_update(body)
        with self.lock:
            self._only_default(name)
            s = self._get(name)
            was_running = s.running
            self._stop(s)
            s.config, s.apps = data["config"], data["apps"]
            if was_running:
                self._start(s)
            return self._info(s, detailed=True)

    def delete_session(self, name: str) -> None:
        with self.lock:
            self._only_default(name)
            s = self.sessions.get(name)
            if s is None:
                return
            self._stop(s)
            s.auth = None
            del self.sessions[name]

    def start_session(self, name: str) -> dict:
        with self.lock:
            self._only_default(name)
            s = self._get(name)
            if s.running:
                if self.settings.core_single_session:
                    raise errors.already_started(name)
            else:
                self._start(s)
            return self._info(s, detailed=True)

    def stop_session(self, name: str) -> dict:
        with self.lock:
            self._only_default(name)
            s = self._get(name)
            self._stop(s)
            return self._info(s, detailed=True)

    def logout_session(self, name: str) -> dict:
        with self.lock:
            self._only_default(name)
            s = self._get(name)
            was_running = s.running
            self._stop(s)
            s.auth, s.unlinked = None, False
            if was_running:
                self._start(s)
            return self._info(s, detailed=True)

    def restart_session(self, name: str) -> dict:
        with self.lock:
            self._only_default(name)
            s = self._get(name)
            self._stop(s)
            self._start(s)
            return self._info(s, detailed=True)

    def me(self, name: str) -> dict | None:
        with self.lock:
            return self._me(self._running(name))

    # deprecated endpoints ------------------------------------------------

    def deprecated_start(self, body) -> dict:
        body = body if isinstance(body, dict) else {}
        name = body.get("name") or "default"
        data = clean_update({"config": body.get("config")})
        with self.lock:
            self._only_default(name)
            s = self.sessions.get(name)
            if s is not None and s.running:
                raise errors.already_started(name)
            if s is None:
                s = Session(name=name, config=data["config"], apps=None)
                s.history.append({"status": STOPPED, "timestamp": now_ms()})
                self.sessions[name] = s
            else:
                s.config = data["config"]
            self._start(s)
            return {"name": s.name, "status": s.status, "config": copy.deepcopy(s.config)}

    def deprecated_stop(self, body) -> None:
        body = body if isinstance(body, dict) else {}
        name = body.get("name") or "default"
        if body.get("logout"):
            self.delete_session(name)
            return
        with self.lock:
            self._only_default(name)
            s = self.sessions.get(name)
            if s is not None:
                self._stop(s)

    # ------------------------------------------------------------------ pairing

    def qr(self, name) -> str:
        """Current QR value; 422 unless SCAN_QR_CODE."""
        return self._with_wait(lambda: self._working(name, (SCAN_QR_CODE,)).qr_value)

    def qr_image(self, name) -> bytes:
        return qr_png(self.qr(name))

    def request_code(self, name: str, body) -> dict:
        body = body if isinstance(body, dict) else {}
        phone = body.get("phoneNumber")
        if not isinstance(phone, str) or not phone:
            raise errors.validation(["phoneNumber must be a string"])

        def attempt():
            s = self._running(name)
            if s.status != SCAN_QR_CODE:
                raise errors.status_mismatch(name, s.status, [SCAN_QR_CODE])
            s.code = pairing_code()
            return {"code": s.code}

        return self._with_wait(attempt)

    def screenshot(self, name: str) -> bytes:
        """PNG bytes; GOWS/NOWEB only have something to show while SCAN_QR_CODE."""

        def attempt():
            s = self._running(name)
            if s.status == SCAN_QR_CODE and s.qr_value:
                return qr_png(s.qr_value)
            if self.engine == "WEBJS":
                return screen_png(f"WAHA simulator {s.name} {s.status}")
            raise errors.status_mismatch(name, s.status, [SCAN_QR_CODE])

        return self._with_wait(attempt)

    # ------------------------------------------------------------------ messaging

    def send(self, kind: str, body) -> dict:
        """POST /api/send{Text,Image,File,Voice,Video}; returns the engine-specific body."""
        body = body if isinstance(body, dict) else {}
        return self._with_wait(lambda: self._send_locked(kind, body))

    def _send_locked(self, kind: str, body: dict) -> dict:
        s = self._working(body.get("session"))
        if self.settings.core_single_session:
            if kind in ("image", "file", "voice"):
                raise errors.plus_only(self.engine)
            if kind == "video":
                raise errors.not_implemented(self.engine, 422 if self.settings.version < "2025" else 501)
        if not isinstance(body.get("chatId"), str) or not body["chatId"]:
            raise ValueError("chatId is required")
        chat = shapes.normalize_chat(body["chatId"])
        client_id = body.get("id")
        if client_id:
            client_id = str(client_id)
            known = s.by_client_id.get(client_id)
            if known is not None and known in s.outbox:
                # Same pre-generated id again: WhatsApp keeps one message, so do we.
                return copy.deepcopy(s.outbox[known]["response"])
        self.refuse_new_contact(s, chat, f"/api/send{kind.capitalize()}")
        if kind == "text":
            text = body.get("text")
            if not isinstance(text, str):
                raise ValueError("text is required")
            file_info, data = None, None
        else:
            text = body.get("caption") if isinstance(body.get("caption"), str) else ""
            file_info, data = self._read_file(kind, body.get("file"))
        wa_id = client_id or wa_message_id()
        msg_id = f"true_{chat}_{wa_id}"
        ts = int(time.time())
        media = None
        if file_info is not None:
            if data is not None:
                media = self._store_file(s, msg_id, data, file_info["mimetype"], file_info.get("filename"))
            else:
                media = {
                    "url": file_info["url"],
                    "mimetype": file_info["mimetype"],
                    "filename": file_info.get("filename"),
                    "error": None,
                }
        record = {
            "id": msg_id,
            "waId": wa_id,
            "clientId": client_id,
            "chatId": chat,
            "kind": kind,
            "body": text,
            "file": file_info,
            "media": media,
            "replyTo": body.get("reply_to"),
            "timestamp": ts,
            "seq": next(self._seq),
            "ack": 0,
        }
        response = shapes.send_response(self.engine, record, (s.auth or {}).get("id"))
        record["response"] = response
        self._remember(s.outbox, msg_id, record, s)
        if client_id:
            s.by_client_id[client_id] = msg_id
        s.activity = now_ms()
        self._emit(s, "message.any", shapes.message_payload(self.engine, record, (s.auth or {}).get("id"), ack=1))
        if not s.unlinked:
            run = s.run_id
            for ack in (1, 2, 3) if self.auto_read else (1, 2):
                self.scheduler.call_later(self.settings.ack_delay * ack, self._ack_later(s.name, run, msg_id, ack))
        return copy.deepcopy(response)

    def _ack_later(self, name: str, run: int, msg_id: str, ack: int):
        return lambda: self._auto_ack(name, run, msg_id, ack)

    def _read_file(self, kind: str, raw) -> tuple[dict, bytes | None]:
        if not isinstance(raw, dict):
            raise ValueError("file is required")
        mimetype = raw.get("mimetype") if isinstance(raw.get("mimetype"), str) else DEFAULT_MIMETYPES[kind]
        info = {"mimetype": mimetype, "filename": raw.get("filename")}
        if isinstance(raw.get("data"), str):
            try:
                data = base64.b64decode(raw["data"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"file.data is not valid base64: {exc}") from exc
            info["size"] = len(data)
            return info, data
        if isinstance(raw.get("url"), str) and raw["url"]:
            info["url"] = raw["url"]
            return info, None
        raise ValueError("file.url or file.data is required")

    def _remember(self, store: OrderedDict, key: str, record: dict, s: Session) -> None:
        store[key] = record
        while len(store) > self.settings.max_messages:
            _, old = store.popitem(last=False)
            if old.get("clientId") and s.by_client_id.get(old["clientId"]) == old["id"]:
                del s.by_client_id[old["clientId"]]

    def _store_file(self, s: Session, msg_id: str, data: bytes, mimetype: str, filename) -> dict:
        name = f"{msg_id}.{shapes.extension_for(mimetype)}"
        s.files[name] = (data, mimetype, time.monotonic() + self.settings.files_lifetime)
        return {
            "url": f"{self.settings.base_url}/api/files/{s.name}/{name}",
            "mimetype": mimetype,
            "filename": filename,
            "error": None,
        }

    def _auto_ack(self, name: str, run: int, msg_id: str, ack: int) -> None:
        with self.lock:
            s = self._alive(name, run)  # a stop or restart in between drops pending acks
            if s is None or s.status != WORKING or s.unlinked:
                return
            record = s.outbox.get(msg_id)
            if record is not None:
                self._emit_ack(s, record, ack)

    def _emit_ack(self, s: Session, record: dict, ack: int) -> bool:
        key = (record["id"], ack)
        now = time.monotonic()
        if now - s.acks_seen.get(key, -1e9) < ACK_DEDUP_SECONDS:
            return False  # WAHA suppresses repeats of the same (id, ack) within 60 s
        s.acks_seen[key] = now
        if len(s.acks_seen) > 4 * self.settings.max_messages:
            for old in [k for k, t in s.acks_seen.items() if now - t >= ACK_DEDUP_SECONDS]:
                del s.acks_seen[old]
        record["ack"] = ack
        event = "message.ack.group" if record["chatId"].endswith("@g.us") else "message.ack"
        payload = shapes.ack_payload(self.engine, record, (s.auth or {}).get("id"), ack)
        self._emit(s, event, payload)
        return True

    def chat_message(self, name: str, chat_id: str, message_id: str) -> dict:
        """GET /api/{session}/chats/{chatId}/messages/{messageId}: the stored WAMessage (ack as it is now), or 404.

        WAHA reads the engine's message store; the simulator's store is the session's outbox and inbox.
        """

        def attempt():
            s = self._working(name)
            chat = shapes.normalize_chat(chat_id)
            sent = s.outbox.get(message_id)
            record = sent or s.inbox.get(message_id)
            if record is None or record["chatId"] != chat:
                raise errors.nest(404, "Message not found")
            # A sent message is on the server (SERVER) from the moment WAHA answered the send.
            ack = max(record.get("ack", 0), 1) if sent else record.get("ack", 0)
            return shapes.message_payload(self.engine, record, (s.auth or {}).get("id"), ack=ack)

        return self._with_wait(attempt)

    def send_seen(self, body) -> dict:
        """POST /api/sendSeen: without message ids WAHA reads the chat's last 7 days (as `messages/read`)."""
        body = body if isinstance(body, dict) else {}
        ids = body.get("messageIds") or ([body["messageId"]] if body.get("messageId") else [])
        if not ids:
            if not isinstance(body.get("chatId"), str) or not body["chatId"]:
                self._with_wait(lambda: self._working(body.get("session")))
                raise ValueError("chatId is required")
            return self.read_chat(body.get("session"), body["chatId"])

        def attempt():
            s = self._working(body.get("session"))
            read = [r for r in (s.inbox.get(str(i)) for i in ids) if r is not None and not r.get("read")]
            for record in read:
                record["read"] = True
            if read:
                s.reads.append({"chatId": read[0]["chatId"], "ids": [r["id"] for r in read], "at": now_ms()})
            return {}

        return self._with_wait(attempt)

    def check_exists(self, name, phone) -> dict:
        self._with_wait(lambda: self._working(name))
        digits = str(phone or "").strip().split("@")[0].lstrip("+")
        if shapes.number_exists(digits) and digits not in self.absent_numbers:
            return {"numberExists": True, "chatId": f"{digits}@c.us"}
        return {"numberExists": False}

    def mark_absent(self, digits: list[str], absent: bool = True) -> dict:
        """Make check-exists answer numberExists false (or true again) for these numbers."""
        with self.lock:
            cleaned = {d.strip().lstrip("+").split("@")[0] for d in digits if d and d.strip()}
            if absent:
                self.absent_numbers |= cleaned
            else:
                self.absent_numbers -= cleaned
            return {"absent": sorted(self.absent_numbers)}

    def get_file(self, name: str, filename: str) -> tuple[bytes, str]:
        with self.lock:
            s = self.sessions.get(name)
            now = time.monotonic()
            if s is not None:
                for key in [k for k, v in s.files.items() if v[2] <= now]:
                    del s.files[key]
                if filename in s.files:
                    data, mimetype, _ = s.files[filename]
                    return data, mimetype
        raise errors.file_not_found(filename)

    # ------------------------------------------------------------------ observability

    def server_status(self) -> dict:
        with self.lock:
            return {
                "startTimestamp": self.start_timestamp,
                "uptime": int((time.monotonic() - self._start_monotonic) * 1000),
                "worker": {"id": ""},
            }

    def health(self) -> dict:
        if self.settings.core_single_session:
            raise errors.plus_only(self.engine)
        folder = tempfile.gettempdir()
        free = shutil.disk_usage(folder).free
        info = {
            "mediaFiles.space": {"status": "up", "path": folder, "diskPath": "/", "free": free, "threshold": 104857600},
            "sessionsFiles.space": {
                "status": "up",
                "path": folder,
                "diskPath": "/",
                "free": free,
                "threshold": 104857600,
            },
        }
        return {"status": "ok", "info": info, "error": {}, "details": copy.deepcopy(info)}

    # ------------------------------------------------------------------ control surface

    def _control_session(self, name: str) -> Session:
        s = self.sessions.get(name)
        if s is None:
            raise ControlError(404, f"session '{name}' does not exist")
        return s

    def scan(self, name: str, phone: str | None = None, push_name: str | None = None) -> dict:
        """Pair the session as if the QR code was scanned; STARTING shows a QR first."""
        with self.lock:
            s = self._control_session(name)
            if s.status == STARTING:
                self._show_qr(s)
            if s.status != SCAN_QR_CODE:
                raise ControlError(409, f"session '{name}' is {s.status}; scanning needs SCAN_QR_CODE")
            self._login(s, phone or self.settings.auto_scan_phone, push_name)
            return self._info(s, detailed=True)

    def fail(self, name: str) -> dict:
        with self.lock:
            s = self._control_session(name)
            if not s.running:
                raise ControlError(409, f"session '{name}' is STOPPED")
            s.run_id += 1
            s.qr_value, s.code = None, None
            self._set_status(s, FAILED)
            return self._info(s, detailed=True)

    def logout_from_phone(self, name: str, mode: str = "rescan") -> dict:
        """The user removed the linked device on the phone.

        mode "rescan" (default): auth is wiped and the session shows a new QR
        (STARTING then SCAN_QR_CODE), as GOWS/NOWEB do on a logged-out event.
        mode "silent": the session keeps reporting WORKING, sends still answer 201
        but nothing is delivered (no acks) and nothing comes in, until it is
        restarted, which then needs a new scan.
        """
        with self.lock:
            s = self._control_session(name)
            if s.status != WORKING:
                raise ControlError(409, f"session '{name}' is {s.status}; it is not paired")
            if mode == "silent":
                s.unlinked = True
            elif mode == "rescan":
                s.auth, s.unlinked = None, False
                self._start(s)
            else:
                raise ControlError(400, "mode must be 'rescan' or 'silent'")
            return self._info(s, detailed=True)

    def control_stop(self, name: str) -> dict:
        with self.lock:
            s = self._control_session(name)
            self._stop(s)
            return self._info(s, detailed=True)

    def control_start(self, name: str) -> dict:
        with self.lock:
            s = self._control_session(name)
            if not s.running:
                self._start(s)
            return self._info(s, detailed=True)

    def inbound(self, name: str, from_: str, text: str = "", media: dict | None = None) -> str:
        """An incoming message from `from_`: emits `message` and `message.any`, returns its id."""
        with self.lock:
            s = self._control_session(name)
            if s.status != WORKING or s.unlinked:
                raise ControlError(409, f"session '{name}' is not WORKING")
            chat = shapes.normalize_chat(from_)
            wa_id = wa_message_id()
            msg_id = f"false_{chat}_{wa_id}"
            ts = int(time.time())
            media_out = None
            if media is not None:
                if not isinstance(media, dict):
                    raise ControlError(400, "media must be an object")
                if media.get("data"):
                    try:
                        data = base64.b64decode(media["data"], validate=True)
                    except (binascii.Error, ValueError):
                        raise ControlError(400, "media.data is not valid base64") from None
                    mimetype = media.get("mimetype") or "application/octet-stream"
                else:
                    data = screen_png(text or "WAHA simulator image")
                    mimetype = media.get("mimetype") or "image/png"
                media_out = self._store_file(s, msg_id, data, mimetype, media.get("filename"))
            record = {
                "id": msg_id,
                "waId": wa_id,
                "clientId": None,
                "chatId": chat,
                "kind": "text" if media_out is None else "image",
                "body": text or "",
                "file": None
                if media_out is None
                else {"mimetype": media_out["mimetype"], "filename": media_out["filename"]},
                "media": media_out,
                "timestamp": ts,
                "seq": next(self._seq),
                "ack": 2,
            }
            self._remember(s.inbox, msg_id, record, s)
            s.activity = now_ms()
            contact = self._contact(s, chat)
            contact["pushname"] = contact["pushname"] or "Sim Contact"  # WhatsApp learns it from the message
            payload = shapes.message_payload(
                self.engine, record, (s.auth or {}).get("id"), ack=2, push_name=contact["pushname"]
            )
            self._emit(s, "message", copy.deepcopy(payload))
            self._emit(s, "message.any", payload)
            return msg_id

    def ack(self, name: str, msg_id: str, ack: int) -> bool:
        """Emit an ack by hand; returns False when suppressed as a duplicate."""
        with self.lock:
            s = self._control_session(name)
            record = s.outbox.get(msg_id) or s.inbox.get(msg_id)
            if record is None:
                parts = str(msg_id).split("_")
                if len(parts) < 3 or parts[0] not in ("true", "false"):
                    raise ControlError(400, "id must look like <fromMe>_<chatId>_<messageId>")
                record = {
                    "id": msg_id,
                    "chatId": parts[1],
                    "waId": parts[2],
                    "kind": "text",
                    "body": "",
                    "media": None,
                    "timestamp": int(time.time()),
                    "ack": 0,
                }
            return self._emit_ack(s, record, int(ack))

    def server_restart(self, wipe: bool = False) -> None:
        """Like a container restart with persistent storage: all sessions STOPPED, config and auth kept."""
        with self.lock:
            self.dispatcher.forget_pending()
            for s in self.sessions.values():
                s.run_id += 1
                s.qr_value, s.code = None, None
                if s.status != STOPPED:
                    s.status = STOPPED  # the process died: nobody emits this change
                    s.history.append({"status": STOPPED, "timestamp": now_ms()})
                    del s.history[:-3]
                s.files.clear()
            if wipe:
                self.sessions.clear()
            self.start_timestamp = now_ms()
            self._start_monotonic = time.monotonic()

    def reset(self) -> None:
        """Forget everything: sessions, messages, event and delivery logs, chaos settings."""
        with self.lock:
            self.dispatcher.forget_pending()
            for s in self.sessions.values():
                s.run_id += 1
            self.sessions.clear()
            self.absent_numbers.clear()
            self.pictures.clear()
            self.events.clear()
            self.dispatcher.clear_log()
            self.latency_ms = 0
            self.fail_next_count = 0
            self.fail_next_status = 503
            self.auto_read = self.settings.auto_read

    def set_auto_read(self, on: bool) -> None:
        """Whether sent messages reach READ by themselves from now on (reset restores the setting)."""
        with self.lock:
            self.auto_read = bool(on)

    def set_latency(self, ms: int) -> None:
        with self.lock:
            self.latency_ms = max(0, int(ms))

    def set_fail_next(self, count: int, status: int = 503) -> None:
        with self.lock:
            self.fail_next_count = max(0, int(count))
            self.fail_next_status = int(status)

    def take_failure(self) -> int | None:
        """Status for this /api call if one of the next-N failures is pending."""
        with self.lock:
            if self.fail_next_count <= 0:
                return None
            self.fail_next_count -= 1
            return self.fail_next_status

    def session_state(self, name: str) -> dict | None:
        with self.lock:
            s = self.sessions.get(name)
            if s is None:
                return None
            info = self._info(s, detailed=True)
            info["qr"] = {"value": s.qr_value, "count": s.qr_count}
            info["paired"] = s.auth is not None
            info["unlinked"] = s.unlinked
            info["pairingCode"] = s.code
            info["history"] = copy.deepcopy(s.history)
            info["sentCount"] = len(s.outbox)
            info["receivedCount"] = len(s.inbox)
            return info

    def recent_events(self) -> list[dict]:
        """Envelopes produced recently (bounded), oldest first."""
        with self.lock:
            return copy.deepcopy(list(self.events))

    def sent_messages(self, name: str) -> list[dict]:
        with self.lock:
            s = self.sessions.get(name)
            if s is None:
                return []
            return [copy.deepcopy(r) for r in s.outbox.values()]

    def state(self) -> dict:
        with self.lock:
            settings = {k: v for k, v in vars(self.settings).items() if k not in ("api_key", "extra")}
            return {
                "startTimestamp": self.start_timestamp,
                "engine": self.engine,
                "version": self.settings.version,
                "tier": self.settings.effective_tier,
                "settings": settings,
                "latencyMs": self.latency_ms,
                "autoRead": self.auto_read,
                "failNext": {"count": self.fail_next_count, "status": self.fail_next_status},
                "sessions": {name: self.session_state(name) for name in self.sessions},
            }
