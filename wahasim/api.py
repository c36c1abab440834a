"""The WAHA HTTP surface: /ping, /health and /api/** (CONTRACT sections 2-9)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time

from flask import Blueprint, Response, current_app, request

from . import errors
from .simulator import Simulator
from .web import empty_response, json_response

bp = Blueprint("waha", __name__)

TRUE_VALUES = ("true", "True", "1")
FALSE_VALUES = ("false", "False", "0")


def sim() -> Simulator:
    return current_app.extensions["wahasim"]


def body_json():
    """The JSON body, or None when there is none; malformed JSON is a 400 like body-parser's."""
    if not request.get_data(cache=True):
        return None
    try:
        return request.get_json(force=True, silent=False)
    except Exception:
        raise errors.nest(400, "Unexpected token in JSON") from None


def key_matches(configured: str, provided: str) -> bool:
    """Constant-time comparison; `sha512:<hex>` keys are compared by digest as WAHA allows."""
    if configured.startswith("sha512:"):
        digest = hashlib.sha512(provided.encode()).hexdigest()
        return hmac.compare_digest(digest.encode(), configured[7:].lower().encode())
    return hmac.compare_digest(configured.encode(), provided.encode())


def _drop_connection() -> bool:
    """Close the client socket so the caller sees a network error (werkzeug server only)."""
    sock = request.environ.get("werkzeug.socket")
    if sock is None:
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return True


@bp.before_app_request
def guard():
    """Latency, injected failures and the API key, for /api/** and /health."""
    path = request.path
    is_api = path.startswith("/api/") or path == "/api"
    if not (is_api or path == "/health"):
        return None
    simulator = sim()
    if is_api:
        if simulator.latency_ms:
            time.sleep(simulator.latency_ms / 1000)
        failure = simulator.take_failure()
        if failure is not None:
            if failure == 0 and _drop_connection():
                return Response(b"", status=500)
            status = failure or 503
            return json_response(
                {"message": "Simulated failure", "error": errors.phrase(status), "statusCode": status}, status
            )
    configured = simulator.settings.api_key
    if configured:
        provided = request.headers.get("X-Api-Key")
        if provided is None:
            provided = request.args.get("x-api-key")
        if provided is None or not key_matches(configured, provided):
            raise errors.unauthorized()
    return None


# ---------------------------------------------------------------- observability


@bp.get("/ping")
def ping():
    return json_response({"message": "pong"})


@bp.get("/health")
def health():
    return json_response(sim().health())


@bp.get("/api/server/version")
@bp.get("/api/version")
def version():
    return json_response(sim().environment())


@bp.get("/api/server/status")
def server_status():
    return json_response(sim().server_status())


# ---------------------------------------------------------------- sessions


def _flag(name: str, default: bool = False) -> bool:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise errors.validation([f"{name} must be a boolean value"])


def _expand_apps() -> bool:
    expand = request.args.getlist("expand")
    values = [part for item in expand for part in item.split(",") if part]
    for value in values:
        if value != "apps":
            raise errors.validation(["each value in expand must be one of the following values: apps"])
    return "apps" in values


@bp.get("/api/sessions")
@bp.get("/api/sessions/")
def list_sessions():
    return json_response(sim().list_sessions(_flag("all"), _expand_apps()))


@bp.post("/api/sessions")
@bp.post("/api/sessions/")
def create_session():
    return json_response(sim().create_session(body_json()), 201)


@bp.post("/api/sessions/start")
def deprecated_start():
    return json_response(sim().deprecated_start(body_json()), 201)


@bp.post("/api/sessions/stop")
def deprecated_stop():
    sim().deprecated_stop(body_json())
    return empty_response(201)


@bp.post("/api/sessions/logout")
def deprecated_logout():
    body = body_json()
    name = (body or {}).get("name") if isinstance(body, dict) else None
    sim().delete_session(name or "default")
    return empty_response(201)


@bp.get("/api/sessions/<session>")
def get_session(session):
    return json_response(sim().get_session(session, _expand_apps()))


@bp.put("/api/sessions/<session>")
def update_session(session):
    return json_response(sim().update_session(session, body_json()))


@bp.delete("/api/sessions/<session>")
def delete_session(session):
    sim().delete_session(session)
    return empty_response(200)


@bp.post("/api/sessions/<session>/start")
def start_session(session):
    return json_response(sim().start_session(session), 201)


@bp.post("/api/sessions/<session>/stop")
def stop_session(session):
    return json_response(sim().stop_session(session), 201)


@bp.post("/api/sessions/<session>/logout")
def logout_session(session):
    return json_response(sim().logout_session(session), 201)


@bp.post("/api/sessions/<session>/restart")
def restart_session(session):
    return json_response(sim().restart_session(session), 201)


@bp.get("/api/sessions/<session>/me")
def me(session):
    info = sim().me(session)
    if info is None:
        return empty_response(200)
    return json_response(info)


@bp.get("/api/sessions/<session>/timelock")
def timelock(session):
    return json_response(sim().timelock(session))


@bp.get("/api/sessions/<session>/capping")
def capping(session):
    return json_response(sim().capping(session))


# ---------------------------------------------------------------- pairing


def _image(png: bytes, label: str) -> Response:
    """The Accept rule: exactly `application/json` gets base64 JSON, anything else raw bytes."""
    if request.headers.get("Accept") == "application/json":
        return json_response({"mimetype": label, "data": base64.b64encode(png).decode()})
    return Response(png, status=200, mimetype=label)


@bp.get("/api/<session>/auth/qr")
def auth_qr(session):
    fmt = request.args.get("format", "image")
    if fmt not in ("image", "raw"):
        raise errors.validation(["format must be one of the following values: image, raw"])
    if fmt == "raw":
        return json_response({"value": sim().qr(session)})
    return _image(sim().qr_image(session), "image/png")


@bp.post("/api/<session>/auth/request-code")
def request_code(session):
    return json_response(sim().request_code(session, body_json()), 201)


@bp.get("/api/<session>/auth/passkey/challenge")
def passkey_challenge(session):
    return json_response(sim().passkey_challenge(session))


@bp.post("/api/<session>/auth/passkey")
def submit_passkey(session):
    return json_response(sim().submit_passkey(session, body_json()), 201)


@bp.get("/api/<session>/auth/passkey/confirmation")
def passkey_confirmation(session):
    return json_response(sim().passkey_confirmation(session))


@bp.post("/api/<session>/auth/passkey/confirm")
def confirm_passkey(session):
    return json_response(sim().confirm_passkey(session), 201)


@bp.get("/api/screenshot")
def screenshot():
    # GOWS/NOWEB send the QR PNG but still label it image/jpeg, like WAHA.
    return _image(sim().screenshot(request.args.get("session") or "default"), "image/jpeg")


# ---------------------------------------------------------------- messaging


def _send(kind: str):
    return json_response(sim().send(kind, body_json()), 201)


@bp.post("/api/sendText")
def send_text():
    return _send("text")


@bp.post("/api/sendImage")
def send_image():
    return _send("image")


@bp.post("/api/sendFile")
def send_file():
    return _send("file")


@bp.post("/api/sendVoice")
def send_voice():
    return _send("voice")


@bp.post("/api/sendVideo")
def send_video():
    return _send("video")


@bp.get("/api/<session>/chats/<chat_id>/messages/<message_id>")
def chat_message(session, chat_id, message_id):
    return json_response(sim().chat_message(session, chat_id, message_id))


@bp.post("/api/sendSeen")
def send_seen():
    return json_response(sim().send_seen(body_json()), 201)


@bp.post("/api/startTyping")
def start_typing():
    return json_response(sim().typing(body_json(), "typing"), 201)


@bp.post("/api/stopTyping")
def stop_typing():
    return json_response(sim().typing(body_json(), "paused"), 201)


def _answer(data, status: int = 200):
    """An engine's answer: JSON, or no body when the engine returns nothing (WEBJS reactions, deletes)."""
    return empty_response(status) if data is None else json_response(data, status)


def _number(name: str, default=None, minimum: float = 0):
    """A numeric query parameter as Nest's validation pipe checks it (400 with a `message` array)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise errors.validation([f"{name} must be a number conforming to the specified constraints"]) from None
    if value < minimum or value != value:
        raise errors.validation([f"{name} must not be less than {minimum:g}"])
    return int(value) if value.is_integer() else value


@bp.post("/api/<session>/chats/<chat_id>/messages/read")
def read_chat(session, chat_id):
    result = sim().read_chat(session, chat_id, messages=_number("messages"), days=_number("days"))
    return json_response(result, 201)


@bp.put("/api/reaction")
def reaction():
    return _answer(sim().react(body_json()))


@bp.put("/api/<session>/chats/<chat_id>/messages/<message_id>")
def edit_message(session, chat_id, message_id):
    return _answer(sim().edit_message(session, chat_id, message_id, body_json()))


@bp.delete("/api/<session>/chats/<chat_id>/messages/<message_id>")
def delete_message(session, chat_id, message_id):
    return _answer(sim().delete_message(session, chat_id, message_id))


@bp.delete("/api/<session>/chats/<chat_id>")
def delete_chat(session, chat_id):
    return json_response(sim().delete_chat(session, chat_id))


@bp.post("/api/forwardMessage")
def forward_message():
    return json_response(sim().forward(body_json()), 201)


# ---------------------------------------------------------------- contacts and chats


def _required_query(name: str) -> str:
    value = request.args.get(name)
    if not value:
        raise errors.validation([f"{name} must be a string"])
    return value


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name) or None
    if value is not None and value not in allowed:
        raise errors.validation([f"{name} must be one of the following values: {', '.join(allowed)}"])
    return value


@bp.get("/api/contacts/all")
def contacts_all():
    contacts = sim().list_contacts(
        request.args.get("session") or "default",
        limit=_number("limit"),
        offset=_number("offset"),
        sort_by=_choice("sortBy", ("id", "name")),
        sort_order=_choice("sortOrder", ("desc", "asc")),
    )
    return json_response(contacts)


@bp.get("/api/contacts")
def contact():
    return json_response(sim().get_contact(request.args.get("session") or "default", _required_query("contactId")))


@bp.get("/api/contacts/profile-picture")
def profile_picture():
    _flag("refresh")
    name = request.args.get("session") or "default"
    return json_response(sim().profile_picture(name, _required_query("contactId")))


@bp.get("/api/<session>/lids/<lid>")
def lid_phone(session, lid):
    return json_response(sim().lid_phone(session, lid))


@bp.get("/api/<session>/chats/overview")
def chats_overview(session):
    _flag("merge", True)
    ids = [i for item in request.args.getlist("ids") for i in item.split(",") if i]
    limit, offset = _number("limit", 20), _number("offset", 0)
    return json_response(sim().chats_overview(session, limit=limit, offset=offset, ids=ids or None))


@bp.get("/api/contacts/check-exists")
@bp.get("/api/checkNumberStatus")
def check_exists():
    phone = request.args.get("phone")
    if not phone:
        raise errors.validation(["phone must be a string"])
    return json_response(sim().check_exists(request.args.get("session") or "default", phone))


@bp.get("/api/files/<session>/<path:filename>")
def files(session, filename):
    data, mimetype = sim().get_file(session, filename)
    return Response(data, status=200, mimetype=mimetype.split(";")[0])
