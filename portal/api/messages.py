"""Sending and reading messages: /waha/sessions/<id>/send, .../messages and the tenant-wide /waha/messages."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Response, g, request, url_for

from portal.api import bp
from portal.api.auth import api_route
from portal.api.common import (
    actor,
    dto_field_names,
    idempotency_key,
    json_body,
    query,
    send,
    single_values,
    tenant,
)
from portal.api.schemas import (
    MediaUploadForm,
    MessageListQuery,
    MessagePage,
    MessageResponse,
    ScheduledMessageResponse,
    SendMessageDto,
    TenantMessageListQuery,
    validate,
)
from portal.converters import parse_id
from portal.services import messages, optouts, outreach
from portal.services.errors import Invalid, NotFound
from portal.services.media import media_file, media_gone, uploaded_media
from portal.storage.serving import send_stored


def _message(message: Any) -> MessageResponse:
    stored = isinstance(message.media, dict) and message.media.get("status") == "stored"
    return MessageResponse.of(message, url_for("api.message_media", message_id=message.id) if stored else None)


def _page(filters: MessageListQuery, session_id: str | None) -> Response:
    with dto_field_names():
        page = messages.list_messages(
            tenant(),
            session_id=session_id,
            direction=filters.direction,
            status=filters.status,
            chat_id=filters.chatId,
            q=filters.q,
            since=filters.since,
            until=filters.until,
            cursor=filters.cursor,
            limit=filters.limit,
        )
    return send(MessagePage(data=[_message(m) for m in page.items], nextCursor=page.next_cursor))


def _message_id(raw: str) -> int:
    message_id = parse_id(raw, big=True)
    if message_id is None:
        raise NotFound("No such message.", code="message_not_found")
    return message_id


@bp.post("/sessions/<session_id>/send")
@api_route("messages:send", autocommit=True)
def send_message(session_id: str) -> Response:
    dto = json_body(SendMessageDto)
    if dto.ignoreOptOut:
        optouts.check_override(g.principal.tenant.id, g.principal.kind, g.principal.actor_id, g.principal.role)
    if dto.sendAt is not None:
        with dto_field_names({"send_at": "sendAt"}):
            item = outreach.schedule_message(
                tenant(),
                session_id,
                actor(),
                to=dto.to,
                send_at=dto.sendAt,
                text=dto.text,
                media=dto.media.for_service() if dto.media else None,
                reply_to=dto.replyTo,
                idempotency_key=idempotency_key(),
            )
        return send(ScheduledMessageResponse.of(item), 202)
    with dto_field_names():
        message = messages.send_message(
            tenant(),
            session_id,
            actor(),
            to=dto.to,
            text=dto.text,
            media=dto.media.for_service() if dto.media else None,
            reply_to=dto.replyTo,
            metadata=dto.metadata,
            idempotency_key=idempotency_key(),
            source="api",
            ignore_opt_out=dto.ignoreOptOut,
        )
    return send(_message(message))


@bp.post("/sessions/<session_id>/send/media")
@api_route("messages:send", autocommit=True)
def send_media(session_id: str) -> Response:
    form = validate(MediaUploadForm, single_values(request.form, "form", MediaUploadForm.model_fields), where="form")
    upload = request.files.get("file")
    extra_files = [name for name in request.files if name != "file"]
    if extra_files:
        raise Invalid(
            "Only one file, in the field 'file', may be uploaded.",
            details={"fields": [{"field": n, "message": "Unknown field."} for n in extra_files]},
        )
    content = upload.read() if upload is not None else b""
    if upload is None or not content:
        raise Invalid.field("file", "Attach the file as multipart/form-data field 'file'.")
    media = uploaded_media(content, upload.filename, upload.mimetype, kind=form.type, caption=form.caption)
    # The upload's fields are named as the form sent them, not media.*.
    with dto_field_names(
        {
            "media.data": "file",
            "media.mimetype": "file",
            "media.filename": "file",
            "media.caption": "caption",
            "media.kind": "type",
            "media": "file",
            "send_at": "sendAt",
        }
    ):
        if form.sendAt is not None:
            item = outreach.schedule_message(
                tenant(),
                session_id,
                actor(),
                to=form.to,
                send_at=form.sendAt,
                media=media,
                reply_to=form.replyTo,
                idempotency_key=idempotency_key(),
            )
            return send(ScheduledMessageResponse.of(item), 202)
        message = messages.send_message(
            tenant(),
            session_id,
            actor(),
            to=form.to,
            media=media,
            reply_to=form.replyTo,
            idempotency_key=idempotency_key(),
            source="api",
        )
    return send(_message(message))


@bp.get("/sessions/<session_id>/messages")
@api_route("messages:read")
def list_session_messages(session_id: str) -> Response:
    return _page(query(MessageListQuery), session_id)


@bp.get("/messages")
@api_route("messages:read")
def list_messages() -> Response:
    filters = query(TenantMessageListQuery)
    return _page(filters, filters.sessionId)


@bp.get("/messages/<message_id>")
@api_route("messages:read")
def get_message(message_id: str) -> Response:
    return send(_message(messages.get_message(tenant(), _message_id(message_id))))


@bp.get("/messages/<message_id>/media")
@api_route("messages:read")
def message_media(message_id: str) -> Response:
    stored = media_file(tenant(), _message_id(message_id))
    return send_stored(
        replace(stored, download_name=stored.download_name or f"message-{message_id}"),
        as_attachment=True,
        missing=media_gone(),
        cache_control="private, no-store",
    )
