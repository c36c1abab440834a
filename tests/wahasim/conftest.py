"""Fixtures for the simulator tests: servers over loopback, a webhook receiver, fixtures and schemas."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import pytest
import requests
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server as werkzeug_server
from werkzeug.wrappers import Request, Response

from tests.helpers import load_fixture
from tests.helpers import wait_for as wait_until
from wahasim.testing import SimServer

# Small timings keep the state machine tests fast.
FAST = {"starting_delay": 0.02, "ack_delay": 0.02, "qr_first_seconds": 5.0, "qr_next_seconds": 5.0}


class Api:
    """requests against one SimServer with its API key."""

    def __init__(self, server: SimServer):
        self.server = server
        self.http = requests.Session()
        self.http.headers.update(server.headers)

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return self.http.request(method, self.server.url + path, **kwargs)

    def create(self, name: str = "default", start: bool = True, **body) -> requests.Response:
        return self("POST", "/api/sessions", json={"name": name, "start": start, **body})

    def status(self, name: str) -> str | None:
        info = self.server.session(name)
        return info["status"] if info else None

    def wait_status(self, name: str, status: str, timeout: float = 3.0) -> None:
        wait_until(lambda: self.status(name) == status, timeout)

    def working(self, name: str = "default", **body) -> None:
        """Create, start and pair a session."""
        assert self.create(name, **body).status_code == 201
        self.wait_status(name, "SCAN_QR_CODE")
        self.server.scan(name)


@pytest.fixture
def make_server() -> Iterator[Callable[..., SimServer]]:
    """Start SimServers with fast timings; all are stopped after the test."""
    started: list[SimServer] = []

    def make(**options) -> SimServer:
        values = dict(FAST, api_key="sim-key")
        values.update(options)
        server = SimServer(**values).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server) -> SimServer:
    return make_server()


@pytest.fixture
def api(server) -> Api:
    return Api(server)


@pytest.fixture
def make_api(make_server) -> Callable[..., Api]:
    def make(**options) -> Api:
        return Api(make_server(**options))

    return make


# ---------------------------------------------------------------- webhook receiver


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


class Receiver:
    """A tiny HTTP server that records every POST (headers + raw bytes) and answers scripted statuses."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        # Scripted statuses answer the deliveries of one event, the first to arrive: the simulator delivers
        # events from several threads, so another event's delivery may come between an event's retries.
        self.statuses: deque[int] = deque()
        self.scripted_id: str | None = None
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server = werkzeug_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def _app(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        if self.delay:
            time.sleep(self.delay)
        payload = json.loads(body) if body else None
        event_id = (payload or {}).get("id") if isinstance(payload, dict) else None
        with self._lock:
            if self.statuses and self.scripted_id is None:
                self.scripted_id = event_id
            scripted = self.statuses and event_id == self.scripted_id
            status = self.statuses.popleft() if scripted else 200
            self.calls.append(
                {
                    "headers": dict(request.headers),
                    "body": body,
                    "status": status,
                    "at": time.monotonic(),
                    "json": payload,
                }
            )
        return Response("ok", status=status)(environ, start_response)

    def events(self, name: str | None = None) -> list[dict]:
        with self._lock:
            return [c for c in self.calls if name is None or c["json"]["event"] == name]

    def scripted(self, count: int, timeout: float = 3.0) -> list[dict]:
        """The first `count` deliveries of the event that the scripted statuses answered."""

        def calls() -> list[dict]:
            with self._lock:
                return [c for c in self.calls if self.scripted_id and (c["json"] or {}).get("id") == self.scripted_id]

        wait_until(lambda: len(calls()) >= count, timeout)
        return calls()[:count]

    def wait(self, count: int, name: str | None = None, timeout: float = 3.0) -> list[dict]:
        wait_until(lambda: len(self.events(name)) >= count, timeout)
        return self.events(name)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# ---------------------------------------------------------------- openapi schemas


def _nullable(node):
    """OpenAPI 3.0 `nullable: true` means null is allowed; JSON Schema ignores it (CONTRACT 14).

    Also drops the property-level `required: true` booleans the document carries,
    which are not valid JSON Schema.
    """
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items()}
    if isinstance(node.get("required"), bool):
        del node["required"]
    if node.pop("nullable", False) is True:
        return {"anyOf": [node, {"type": "null"}]}
    return node


def _relaxed(doc: dict) -> dict:
    """Where CONTRACT.md (read from WAHA's code) says the document is wrong, follow the contract."""
    doc = _nullable(copy.deepcopy(doc))
    schemas = doc["components"]["schemas"]
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
    info = schemas["SessionInfo"]["properties"]
    # CONTRACT 14: `me` is null before login; `presence` is "online"/"offline"/null, not an object;
    # `config` is null when never set.
    info["me"] = {"anyOf": [ref("MeInfo"), {"type": "null"}]}
    info["presence"] = {"type": ["string", "null"]}
    info["config"] = {"anyOf": [ref("SessionConfig"), {"type": "null"}]}
    schemas["SessionDTO"]["properties"]["config"] = {"anyOf": [ref("SessionConfig"), {"type": "null"}]}
    # CONTRACT 8.4/9: GOWS and NOWEB report browser null.
    schemas["WAHAEnvironment"]["properties"]["browser"] = {"type": ["string", "null"]}
    # CONTRACT 8.4: webhook event names are strings (the document types the items as objects).
    schemas["WebhookConfig"]["properties"]["events"]["items"] = {"type": "string"}
    # CONTRACT 8.4: an envelope's `event` is a string too (the webhook schemas type it as an object).
    for name, schema in schemas.items():
        if name.startswith("WAHAWebhook") and "event" in schema.get("properties", {}):
            schema["properties"]["event"]["type"] = "string"
    # CONTRACT 8.5: message payloads carry null for what is absent (`to` on GOWS/NOWEB, `participant` outside
    # groups, no media, location or quoted message), and leave the deprecated `mediaUrl` out.
    for name in ("WAMessage", "WAMessageEditedBody", "WAMessageReaction", "WAMessageAckBody"):
        props = schemas[name]["properties"]
        for key in ("to", "participant", "media", "location", "replyTo", "author"):
            if key in props:
                props[key] = {"anyOf": [props[key], {"type": "null"}]}
        schemas[name]["required"] = [k for k in schemas[name]["required"] if k != "mediaUrl"]
    # CONTRACT 8.5: GOWS knows only the revoke message, so `before` is null there.
    schemas["WAMessageRevokedBody"]["properties"]["before"] = {"anyOf": [ref("WAMessage"), {"type": "null"}]}
    # WAHA's GOWS code: a chat presence (typing, paused...) has `lastSeen: null`.
    lastseen = schemas["WAHAPresenceData"]["properties"]["lastSeen"]
    schemas["WAHAPresenceData"]["properties"]["lastSeen"] = {"anyOf": [lastseen, {"type": "null"}]}
    # WAHA's lids controller: `pn` is null for a LID it cannot map (`result.pn = result.pn || null`).
    schemas["LidToPhoneNumber"]["properties"]["pn"] = {"type": ["string", "null"]}
    return doc


class Schemas:
    """Validate bodies against openapi.json components (with the contract's relaxations)."""

    def __init__(self, doc: dict):
        self.doc = _relaxed(doc)
        self.registry = Registry().with_resource(
            "urn:waha-openapi", Resource.from_contents(self.doc, default_specification=DRAFT202012)
        )

    def validator(self, schema: dict) -> Draft202012Validator:
        return Draft202012Validator(schema, registry=self.registry)

    def component(self, name: str) -> dict:
        return {"$ref": f"urn:waha-openapi#/components/schemas/{name}"}

    def response(self, path: str, method: str, status: str, content: str = "application/json") -> dict:
        """The response schema of an operation, with local $refs pointed at the document."""
        schema = self.doc["paths"][path][method]["responses"][status]["content"][content]["schema"]
        text = json.dumps(schema).replace('"#/components/', '"urn:waha-openapi#/components/')
        return json.loads(text)

    def send_answer(self) -> dict:
        """CONTRACT 7.3: a send answer is engine-specific, not the WAMessage the document names.

        Only `id` is common ground (string on GOWS, object with _serialized on WEBJS, absent on NOWEB), so the
        WAMessage properties are kept but nothing is required and `id` may be an object.
        """
        message = copy.deepcopy(self.doc["components"]["schemas"]["WAMessage"])
        message["required"] = []
        message["properties"]["id"] = {
            "anyOf": [
                {"type": "string"},
                {"type": "object", "required": ["_serialized"], "properties": {"_serialized": {"type": "string"}}},
            ]
        }
        text = json.dumps(message).replace('"#/components/', '"urn:waha-openapi#/components/')
        return json.loads(text)

    def event(self, envelope: dict) -> dict:
        """The webhook schema of an envelope's event (`message.reaction` -> WAHAWebhookMessageReaction)."""
        name = "WAHAWebhook" + "".join(part.capitalize() for part in envelope["event"].split("."))
        return self.component(name)

    def validate(self, instance, schema: dict) -> None:
        errors = sorted(self.validator(schema).iter_errors(instance), key=lambda e: list(e.path))
        assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    return Schemas(load_fixture("openapi.json"))
