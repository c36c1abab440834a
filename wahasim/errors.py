"""Error bodies exactly as WAHA shapes them (CONTRACT section 4)."""

from __future__ import annotations

import base64
from http import HTTPStatus

STATUS_MISMATCH = "Session status is not as expected. Try again later or restart the session"
PLUS_URL = "https://waha.devlike.pro/"


class SimError(Exception):
    """An HTTP answer other than success: status code plus the exact JSON body.

    `retryable` marks the errors WAHA answers only after waiting for the session
    (status mismatch, unknown session), so the optional --status-wait applies.
    """

    def __init__(self, status: int, body, retryable: bool = False):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.retryable = retryable


def phrase(status: int) -> str:
    """Standard reason phrase, as Nest puts it in `error`."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def nest(status: int, message) -> SimError:
    """The NestJS HttpException body: message, error, statusCode."""
    return SimError(status, {"message": message, "error": phrase(status), "statusCode": status})


def unauthorized() -> SimError:
    return SimError(401, {"message": "Unauthorized", "statusCode": 401})


def validation(messages: list[str]) -> SimError:
    """400 from the validation pipe; `message` is always an array."""
    return nest(400, list(messages))


def session_not_found() -> SimError:
    return nest(404, "Session not found")


def not_running(name: str) -> SimError:
    """404 from a direct lookup of a session that is not running."""
    return nest(
        404,
        f"We didn't find a session with name '{name}'.\n"
        f"Please start it first by using POST /api/sessions/{name}/start request",
    )


def already_exists(name: str) -> SimError:
    return nest(422, f"Session '{name}' already exists. Use PUT to update it.")


def already_started(name: str) -> SimError:
    return nest(422, f"Session '{name}' is already started.")


def status_mismatch(name: str, status: str, expected: list[str]) -> SimError:
    """422 without statusCode/message keys, as WAHA's session pipe answers."""
    return SimError(
        422,
        {"error": STATUS_MISMATCH, "session": name, "status": status, "expected": list(expected)},
        retryable=True,
    )


def does_not_exist(name: str) -> SimError:
    return SimError(422, {"error": f'Session "{name}" does not exist', "session": name}, retryable=True)


def session_required() -> SimError:
    return SimError(422, {"error": "Session name is required"})


def only_default(name: str) -> SimError:
    """Core (< 2026.6.1) refuses every session name but 'default'."""
    encoded = base64.b64encode(name.encode()).decode()
    return nest(
        422,
        f"WAHA Core support only 'default' session. You tried to access '{name}' session "
        f"(base64: {encoded}). If you want to run more then one WhatsApp account - please get "
        f"WAHA PLUS version. Check this out: {PLUS_URL}",
    )


def plus_only(engine: str) -> SimError:
    return nest(422, f"The feature is available only in Plus version for '{engine}' engine. Check this out: {PLUS_URL}")


def not_implemented(engine: str, status: int = 501) -> SimError:
    return nest(status, f"The method is not implemented by '{engine}' engine. Check this out: {PLUS_URL}")


def unknown_route(method: str, path: str) -> SimError:
    return nest(404, f"Cannot {method} {path}")


def file_not_found(filename: str) -> SimError:
    return SimError(
        404,
        {
            "error": {
                "code": 404,
                "key": "FILE_NOT_FOUND",
                "message": "File not found",
                "details": f"File not found or no access: {filename}",
            }
        },
    )


class ControlError(Exception):
    """Refusal from the /_sim control surface (not a WAHA shape)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
