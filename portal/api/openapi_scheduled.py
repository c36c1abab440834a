"""Scheduled messages' part of the /waha route table, error codes and DTOs; `portal.api.openapi` puts them into
the document (sendAt itself is a field of the send, `SendMessageDto`)."""

from __future__ import annotations

from portal.api import schemas as s
from portal.api.route_table import AUTH, ApiRoute, ErrorCode

SCHEDULED_ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(404, "scheduled_message_not_found", "No such scheduled message in your tenant."),
    ErrorCode(
        409, "not_editable", "The scheduled message is being sent or was settled; only queued ones can be changed."
    ),
    ErrorCode(
        409, "not_cancellable", "The message is being sent or was settled (details.state); it cannot be cancelled."
    ),
)

_ITEM = "/waha/scheduled/{item_id}"

SCHEDULED_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET",
        "/waha/scheduled",
        "api.list_scheduled",
        "List scheduled messages",
        "Messages",
        "messages:read",
        response=s.ScheduledPage,
        query=s.ScheduledListQuery,
        errors=(400, *AUTH, 404),
        description="Messages sent with sendAt, newest first, in pages; pass nextCursor as ?cursor= for the next "
        "one. Filters: sessionId, state, chatId, late (held past their time because the session was not WORKING) "
        "and the time to send (since, until).",
    ),
    ApiRoute(
        "GET",
        _ITEM,
        "api.get_scheduled",
        "Get a scheduled message",
        "Messages",
        "messages:read",
        response=s.ScheduledMessageResponse,
        errors=(*AUTH, 404),
    ),
    ApiRoute(
        "PATCH",
        _ITEM,
        "api.update_scheduled",
        "Change a scheduled message",
        "Messages",
        "messages:send",
        response=s.ScheduledMessageResponse,
        body=s.UpdateScheduledDto,
        errors=(400, *AUTH, 404, 409),
        description="A new time (sendAt: in the future, at most a year away) and/or a new text, while it is "
        "still queued (409 not_editable afterwards). Audited as message.schedule_update.",
        example={"sendAt": "2030-05-01T09:00:00+02:00"},
    ),
    ApiRoute(
        "DELETE",
        _ITEM,
        "api.cancel_scheduled",
        "Cancel a scheduled message",
        "Messages",
        "messages:send",
        response=s.ScheduledMessageResponse,
        errors=(*AUTH, 404, 409),
        description="Cancels it while it is still queued (409 not_cancellable once it is being sent or settled); "
        "answers the cancelled message. Audited as outreach.cancel.",
    ),
)

SCHEDULED_MODELS = (s.ScheduledMessageResponse, s.ScheduledPage, s.UpdateScheduledDto)
