"""/waha/sessions: create, list, inspect, drive and remove a tenant's WhatsApp sessions."""

from __future__ import annotations

import base64
import binascii

from flask import Response, g

from portal.api import bp
from portal.api.auth import api_route
from portal.api.common import actor, dto_field_names, idempotency_key, json_body, query, send, tenant
from portal.api.schemas import (
    CreateSessionDto,
    ImageQuery,
    PairingCodeDto,
    PairingCodeResponse,
    PasskeyAssertionDto,
    PasskeyStepResponse,
    QrResponse,
    ScreenResponse,
    SessionCreatedDto,
    SessionListQuery,
    SessionPage,
    SessionResponseDto,
    WebhookSecretResponse,
)
from portal.permissions import LINK_PHONE
from portal.services import session_secrets, sessions
from portal.services.errors import Conflict, Upstream


def _image(mimetype: str, data: str) -> Response:
    try:
        raw = base64.b64decode(data)
    except (binascii.Error, ValueError):
        raise Upstream("WAHA returned an image that is not base64.") from None
    response = Response(raw, mimetype=mimetype or "image/png")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/sessions")
@api_route("sessions:write")
def create_session() -> Response:
    dto = json_body(CreateSessionDto)
    with dto_field_names():
        session = sessions.create_session(
            tenant(),
            actor(),
            name=dto.sessionName,
            engine=dto.engine,
            webhook_url=dto.webhookUrl,
            webhook_events=dto.webhookEvents,
            config=dto.config_for_service(),
            idempotency_key=idempotency_key(),
        )
    return send(SessionCreatedDto.created(session, session_secrets.secret_for(session)), 201)


@bp.get("/sessions")
@api_route("sessions:read")
def list_sessions() -> Response:
    filters = query(SessionListQuery)
    rows = sessions.list_sessions(tenant(), status=filters.status)
    return send(SessionPage(data=[SessionResponseDto.of(s) for s in rows], nextCursor=None))


@bp.get("/sessions/<session_id>")
@api_route("sessions:read")
def get_session(session_id: str) -> Response:
    return send(SessionResponseDto.of(sessions.get_session(tenant(), session_id)))


@bp.delete("/sessions/<session_id>")
@api_route("sessions:write")
def delete_session(session_id: str) -> Response:
    sessions.delete_session(tenant(), session_id, actor())
    return Response(status=204)


@bp.post("/sessions/<session_id>/webhook-secret")
@api_route("sessions:write")
def rotate_session_webhook_secret(session_id: str) -> Response:
    session, secret = session_secrets.rotate(tenant(), session_id, actor())
    return send(WebhookSecretResponse(sessionId=session.id, webhookSecret=secret))


@bp.post("/sessions/<session_id>/start")
@api_route("sessions:write")
def start_session(session_id: str) -> Response:
    return send(SessionResponseDto.of(sessions.start_session(tenant(), session_id, actor())))


@bp.post("/sessions/<session_id>/stop")
@api_route("sessions:write")
def stop_session(session_id: str) -> Response:
    return send(SessionResponseDto.of(sessions.stop_session(tenant(), session_id, actor())))


@bp.post("/sessions/<session_id>/restart")
@api_route("sessions:write")
def restart_session(session_id: str) -> Response:
    return send(SessionResponseDto.of(sessions.restart_session(tenant(), session_id, actor())))


@bp.post("/sessions/<session_id>/logout")
@api_route("sessions:write")
def logout_session(session_id: str) -> Response:
    return send(SessionResponseDto.of(sessions.logout_session(tenant(), session_id, actor())))


@bp.post("/sessions/<session_id>/sync")
@api_route("sessions:read")
def sync_session(session_id: str) -> Response:
    return send(SessionResponseDto.of(sessions.sync_session(tenant(), session_id, actor())))


@bp.get("/sessions/<session_id>/qr")
@api_route(LINK_PHONE)
def get_qr(session_id: str) -> Response:
    fmt = query(ImageQuery).format
    qr = sessions.get_qr(tenant(), session_id)
    if fmt == "image":
        return _image(qr.mimetype, qr.data)
    return send(
        QrResponse(mimetype=qr.mimetype, data=qr.data, expiresIn=qr.expires_in), headers={"Cache-Control": "no-store"}
    )


@bp.post("/sessions/<session_id>/pairing-code")
@api_route(LINK_PHONE)
def request_pairing_code(session_id: str) -> Response:
    dto = json_body(PairingCodeDto)
    with dto_field_names():
        code = sessions.request_pairing_code(tenant(), session_id, dto.phoneNumber, actor())
    return send(PairingCodeResponse(code=code), headers={"Cache-Control": "no-store"})


@bp.get("/sessions/<session_id>/screen")
@api_route("sessions:read")
def get_screen(session_id: str) -> Response:
    fmt = query(ImageQuery).format
    shot = sessions.get_screenshot(tenant(), session_id, may_link=g.principal.can(LINK_PHONE))
    if fmt == "image":
        return _image(shot["mimetype"], shot["data"])
    return send(ScreenResponse(mimetype=shot["mimetype"], data=shot["data"]), headers={"Cache-Control": "no-store"})


@bp.get("/sessions/<session_id>/passkey")
@api_route(LINK_PHONE)
def get_passkey(session_id: str) -> Response:
    session = sessions.get_session(tenant(), session_id)
    step = sessions.passkey_step(tenant(), session)
    if step is None:
        raise Conflict(
            f"The session is {session.status}; WhatsApp asks for no passkey now.",
            code="session_not_ready",
            details={"status": session.status, "expected": list(sessions.PASSKEY_STATUSES)},
        )
    body = PasskeyStepResponse(
        status=session.status, step=step["step"], challenge=step.get("challenge"), code=step.get("code")
    )
    return send(body, headers={"Cache-Control": "no-store"})


@bp.post("/sessions/<session_id>/passkey")
@api_route(LINK_PHONE)
def submit_passkey(session_id: str) -> Response:
    dto = json_body(PasskeyAssertionDto)
    session = sessions.submit_passkey(tenant(), session_id, dto.model_dump(exclude_none=True), actor())
    return send(SessionResponseDto.of(session))


@bp.post("/sessions/<session_id>/passkey/confirm")
@api_route(LINK_PHONE)
def confirm_passkey(session_id: str) -> Response:
    return send(SessionResponseDto.of(sessions.confirm_passkey(tenant(), session_id, actor())))
