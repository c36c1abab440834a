"""A small HTTP(S) server on 127.0.0.1 that answers with a given WSGI app and records what it received."""

from __future__ import annotations

import ssl
import threading
from typing import Any, Callable

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class LoopbackServer:
    """Serves `answer(request) -> Response` on 127.0.0.1 (TLS with `ssl_context`); `requests` lists what came in."""

    def __init__(self, answer: Callable[[Request], Response], ssl_context: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True, ssl_context=ssl_context)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.requests.append({"method": request.method, "path": request.path, "host": request.host,
                                  "headers": dict(request.headers), "body": request.get_data()})
        return self.answer(request)(environ, start_response)

    def __enter__(self) -> "LoopbackServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
