"""Actions on a message that exists: /waha/messages/<id>/reaction, PATCH and DELETE /waha/messages/<id>, and
/waha/messages/<id>/forward. The rules live in `services.messages.actions`."""

from __future__ import annotations

from flask import Response

from portal.api import bp
from portal.api.auth import api_route
from portal.api.common import actor, dto_field_names, idempotency_key, json_body, send, tenant
from portal.api.messages import _message, _message_id
from portal.api.schemas import EditMessageDto, ForwardMessageDto, ReactionDto
from portal.services.messages import actions


@bp.post("/messages/<message_id>/reaction")
@api_route("messages:send")
def react_to_message(message_id: str) -> Response:
    dto = json_body(ReactionDto)
    return send(_message(actions.react(tenant(), actor(), _message_id(message_id), dto.emoji)))


@bp.patch("/messages/<message_id>")
@api_route("messages:send")
def edit_message(message_id: str) -> Response:
    dto = json_body(EditMessageDto)
    return send(_message(actions.edit_message(tenant(), actor(), _message_id(message_id), dto.text)))


@bp.delete("/messages/<message_id>")
@api_route("messages:send")
def delete_message(message_id: str) -> Response:
    return send(_message(actions.delete_message(tenant(), actor(), _message_id(message_id))))


@bp.post("/messages/<message_id>/forward")
@api_route("messages:send")
def forward_message(message_id: str) -> Response:
    dto = json_body(ForwardMessageDto)
    with dto_field_names():
        message = actions.forward_message(
            tenant(),
            actor(),
            _message_id(message_id),
            session_id=dto.sessionId,
            to=dto.to,
            idempotency_key=idempotency_key(),
            source="api",
        )
    return send(_message(message))
