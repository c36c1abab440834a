"""Scheduled messages over the API: /waha/scheduled (list), /waha/scheduled/<id> (read, change, cancel).

Scheduling itself is `sendAt` on POST /waha/sessions/<id>/send (portal.api.messages)."""

from __future__ import annotations

from flask import Response

from portal.api import bp
from portal.api.auth import api_route
from portal.api.common import actor, dto_field_names, json_body, query, send, tenant
from portal.api.schemas import ScheduledListQuery, ScheduledMessageResponse, ScheduledPage, UpdateScheduledDto
from portal.services import outreach
from portal.services.outreach.scheduled import UNSET


@bp.get("/scheduled")
@api_route("messages:read")
def list_scheduled() -> Response:
    filters = query(ScheduledListQuery)
    page = outreach.list_scheduled(
        tenant(),
        session_id=filters.sessionId,
        state=filters.state,
        chat_id=filters.chatId,
        late=filters.late,
        since=filters.since,
        until=filters.until,
        cursor=filters.cursor,
        limit=filters.limit,
    )
    return send(ScheduledPage(data=[ScheduledMessageResponse.of(i) for i in page.items], nextCursor=page.next_cursor))


@bp.get("/scheduled/<item_id>")
@api_route("messages:read")
def get_scheduled(item_id: str) -> Response:
    return send(ScheduledMessageResponse.of(outreach.get_scheduled(tenant(), item_id)))


@bp.patch("/scheduled/<item_id>")
@api_route("messages:send")
def update_scheduled(item_id: str) -> Response:
    dto = json_body(UpdateScheduledDto)
    given = dto.model_fields_set
    with dto_field_names({"send_at": "sendAt"}):
        item = outreach.update_scheduled(
            tenant(),
            item_id,
            actor(),
            send_at=dto.sendAt if "sendAt" in given else UNSET,
            text=dto.text if "text" in given else UNSET,
        )
    return send(ScheduledMessageResponse.of(item))


@bp.delete("/scheduled/<item_id>")
@api_route("messages:send")
def cancel_scheduled(item_id: str) -> Response:
    return send(ScheduledMessageResponse.of(outreach.cancel_scheduled(tenant(), item_id, actor())))
