"""In-process simulator for tests: SimServer runs wahasim on a free loopback port.

sim = SimServer(api_key="sim-key", engine="GOWS", ack_delay=0.05)
sim.start()
requests.get(sim.url + "/api/sessions", headers={"X-Api-Key": sim.api_key})
sim.stop()
"""

from __future__ import annotations

import threading

from werkzeug.serving import WSGIRequestHandler, make_server

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
        self._server = None
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
        self._thread.join(timeout=5)
        self.simulator.close()
        self._server = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- control helpers (same effect as the /_sim endpoints) -----------

    def scan(self, name: str, phone: str = "491701234567", push_name: str | None = None) -> dict:
        return self.simulator.scan(name, phone, push_name)

    def inbound(self, name: str, from_: str = "491709999999", text: str = "hi", media: dict | None = None) -> str:
        return self.simulator.inbound(name, from_, text, media)

    def ack(self, name: str, message_id: str, ack: int) -> bool:
        return self.simulator.ack(name, message_id, ack)

    def fail(self, name: str) -> dict:
        return self.simulator.fail(name)

    def logout_from_phone(self, name: str, mode: str = "rescan") -> dict:
        return self.simulator.logout_from_phone(name, mode)

    def restart(self, wipe: bool = False) -> None:
        self.simulator.server_restart(wipe=wipe)

    def reset(self) -> None:
        self.simulator.reset()

    def set_latency(self, ms: int) -> None:
        self.simulator.set_latency(ms)

    def fail_next(self, count: int, status: int = 503) -> None:
        self.simulator.set_fail_next(count, status)

    def session(self, name: str) -> dict | None:
        return self.simulator.session_state(name)

    def sent_messages(self, name: str) -> list[dict]:
        return self.simulator.sent_messages(name)

    def webhook_log(self) -> list[dict]:
        return self.simulator.dispatcher.log_entries()

    def events(self) -> list[dict]:
        """Every envelope produced recently, whether or not a webhook was configured."""
        return self.simulator.recent_events()
