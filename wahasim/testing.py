"""In-process simulator for tests: SimServer runs wahasim on a free loopback port.

sim = SimServer(api_key="sim-key", engine="GOWS", ack_delay=0.05)
sim.start()
requests.get(sim.url + "/api/sessions", headers={"X-Api-Key": sim.api_key})
sim.stop()
"""

from __future__ import annotations

import threading

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import create_app
from .settings import Settings
from .simulator import Simulator


class _QuietHandler(WSGIRequestHandler):
    """Keeps the access log out of test output."""

    def log_request(self, *args, **kwargs) -> None:
        pass


class SimServer:
    """A wahasim server on 127.0.0.1, port chosen by the OS, served from a daemon thread.

    Keyword options mirror the CLI (engine, ack_delay, qr_first_seconds, ...).
    The helper methods act on the in-memory state directly.
    """

    def __init__(self, api_key: str | None = "sim-key", engine: str = "GOWS", host: str = "127.0.0.1", **options):
        self._options = dict(options, api_key=api_key, engine=engine, host=host, port=0)
        self.settings = Settings.from_mapping(self._options)
        unknown = set(options) - set(vars(self.settings))
        if unknown:
            raise TypeError(f"unknown SimServer options: {', '.join(sorted(unknown))}")
        self.simulator: Simulator | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def api_key(self) -> str | None:
        return self.settings.api_key

    @property
    def headers(self) -> dict:
        """Headers with the API key, handy for requests calls."""
        return {"X-Api-Key": self.api_key} if self.api_key else {}

    def start(self) -> SimServer:
        if self._server is not None:
            return self
        self.simulator = Simulator(self.settings)
        app = create_app(self.settings, simulator=self.simulator)
        self._server = make_server(self.settings.host, 0, app, threaded=True, request_handler=_QuietHandler)
        self.settings.port = self._server.server_port
        self.url = f"http://{self.settings.host}:{self.settings.port}"
        if not self.settings.public_url:
            self.settings.public_url = self.url
        # A short poll interval makes stop() return quickly (the default is 0.5 s).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="wahasim-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.simulator is not None:
            self.simulator.close()
        self._server = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- control helpers (same effect as the /_sim endpoints) -----------

    @property
    def _sim(self) -> Simulator:
        if self.simulator is None:
            raise RuntimeError("the SimServer is not started")
        return self.simulator

    def scan(self, name: str, phone: str = "491701234567", push_name: str | None = None) -> dict:
        return self._sim.scan(name, phone, push_name)

    def mark_absent(self, numbers: list[str], absent: bool = True) -> dict:
        """check-exists answers that these numbers are not on WhatsApp."""
        return self._sim.mark_absent(numbers, absent)

    def inbound(self, name: str, from_: str = "491709999999", text: str = "hi", media: dict | None = None) -> str:
        return self._sim.inbound(name, from_, text, media)

    def ack(self, name: str, message_id: str, ack: int) -> bool:
        return self._sim.ack(name, message_id, ack)

    def fail(self, name: str) -> dict:
        return self._sim.fail(name)

    def logout_from_phone(self, name: str, mode: str = "rescan") -> dict:
        return self._sim.logout_from_phone(name, mode)

    def customer_react(self, name: str, message_id: str, emoji: str, from_: str | None = None) -> str:
        return self._sim.customer_react(name, message_id, emoji, from_)

    def customer_edit(self, name: str, message_id: str, text: str) -> str:
        return self._sim.customer_edit(name, message_id, text)

    def customer_revoke(self, name: str, message_id: str) -> str:
        return self._sim.customer_revoke(name, message_id)

    def customer_read(self, name: str, chat_id: str | None = None, message_ids: list | None = None) -> list[str]:
        return self._sim.customer_read(name, chat_id, message_ids)

    def customer_typing(self, name: str, chat_id: str, state: str = "typing") -> dict:
        return self._sim.customer_typing(name, chat_id, state)

    def set_contact(self, name: str, contact_id: str, **changes) -> dict:
        """changes: saved_name, push_name, picture (True: a new one; False/None: none), lid."""
        return self._sim.set_contact(name, contact_id, **changes)

    def contacts(self, name: str) -> dict:
        return self._sim.contacts_of(name)

    def read_receipts(self, name: str) -> list[dict]:
        return self._sim.read_receipts(name)

    def deleted_chats(self, name: str) -> list[dict]:
        return self._sim.deleted_chats(name)

    def typing_log(self, name: str) -> list[dict]:
        return self._sim.typing_log(name)

    def require_passkey(self, name: str, confirm: bool = False, phone: str | None = None) -> dict:
        return self._sim.require_passkey(name, confirm, phone)

    def set_timelock(self, name: str, active: bool = True, seconds: int = 3600) -> dict:
        return self._sim.set_timelock(name, active, seconds)

    def set_capping(self, name: str, status: str, total: int = 1000, used: int | None = None) -> dict:
        return self._sim.set_capping(name, status, total, used)

    def restart(self, wipe: bool = False) -> None:
        self._sim.server_restart(wipe=wipe)

    def reset(self) -> None:
        self._sim.reset()

    def set_auto_read(self, on: bool) -> None:
        self._sim.set_auto_read(on)

    def set_latency(self, ms: int) -> None:
        self._sim.set_latency(ms)

    def fail_next(self, count: int, status: int = 503) -> None:
        self._sim.set_fail_next(count, status)

    def session(self, name: str) -> dict | None:
        return self._sim.session_state(name)

    def sent_messages(self, name: str) -> list[dict]:
        return self._sim.sent_messages(name)

    def webhook_log(self) -> list[dict]:
        return self._sim.dispatcher.log_entries()

    def events(self) -> list[dict]:
        """Every envelope produced recently, whether or not a webhook was configured."""
        return self._sim.recent_events()
