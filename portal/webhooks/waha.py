"""POST /webhooks/waha?session=<id>: WAHA's events for one session, signed with that session's HMAC key.

The handler only bounds the body and answers; `services.events.ingest` verifies, stores and signals. The answer
is 200 as soon as the events are committed, so WAHA stops retrying; an unknown or missing session is a 404 and
nothing of the request is stored.
"""

from __future__ import annotations

from werkzeug.wrappers import Request

from portal.services import events
from portal.services.errors import ServiceError


class TooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


def receive(request: Request) -> bytes:
    """Receive one event or a JSON array of events; the JSON answer (200)."""
    request.max_content_length = events.MAX_BATCH_BYTES
    length = request.content_length
    if length is not None and length > events.MAX_BATCH_BYTES:
        raise TooLarge(f"A batch may be at most {events.MAX_BATCH_BYTES} bytes.")
    body = request.get_data(cache=False)
    if len(body) > events.MAX_EVENT_BYTES and body.lstrip()[:1] != b"[":
        raise TooLarge(f"An event may be at most {events.MAX_EVENT_BYTES} bytes.")
    result = events.ingest(request.args.get("session"), body, request.headers.get("X-Webhook-Hmac"))
    return (
        f'{{"received":{result.received},"stored":{result.stored},"ignored":{str(result.ignored).lower()},'
        f'"stale":{result.stale}}}'
    ).encode()
