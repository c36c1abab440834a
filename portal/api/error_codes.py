"""Every error code the /waha API answers, with its status and meaning (the inbox's are in `openapi_inbox`)."""

from __future__ import annotations

from portal.api.openapi_campaigns import CAMPAIGN_ERROR_CODES
from portal.api.openapi_inbox import INBOX_ERROR_CODES
from portal.api.openapi_optouts import OPT_OUT_ERROR_CODES
from portal.api.openapi_privacy import PRIVACY_ERROR_CODES
from portal.api.openapi_scheduled import SCHEDULED_ERROR_CODES
from portal.api.openapi_usage import USAGE_ERROR_CODES
from portal.api.route_table import ErrorCode

ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(400, "validation_error", "Bad input; details.fields lists every bad field as {field, message}."),
    ErrorCode(401, "unauthorized", "No bearer credential, or it is unknown, malformed, expired or revoked."),
    ErrorCode(
        403, "forbidden", "The token's scopes (or the JWT's roles) lack the permission; details.required names it."
    ),
    ErrorCode(404, "session_not_found", "No such session in your tenant (another tenant's session looks the same)."),
    ErrorCode(404, "message_not_found", "No such message in your tenant."),
    ErrorCode(404, "media_not_found", "The message has no stored file."),
    ErrorCode(416, "range_not_satisfiable", "The Range header asks for bytes the file does not have."),
    ErrorCode(503, "storage_unavailable", "The portal's file store cannot be reached; retry after Retry-After."),
    ErrorCode(404, "endpoint_not_found", "No such webhook endpoint in your tenant."),
    ErrorCode(404, "delivery_not_found", "No such webhook delivery in your tenant."),
    ErrorCode(409, "session_exists", "Your tenant already has a session with that name."),
    ErrorCode(
        409, "session_not_ready", "The session is not in the status this needs (details.status tells which it is in)."
    ),
    ErrorCode(
        409,
        "idempotency_key_reused",
        "The Idempotency-Key was already used for a different request, or "
        "the session it created was deleted since; use a new key.",
    ),
    ErrorCode(
        409,
        "new_contact_limited",
        "WhatsApp limits this number (a reach-out timelock or the new-chat cap): a first message to a new contact "
        "waits until details.until; replies to existing chats still go out.",
    ),
    ErrorCode(
        409,
        "message_deleted",
        "The message was deleted for everyone: it cannot be reacted to, edited, forwarded or quoted.",
    ),
    ErrorCode(
        409, "message_not_sent", "The message never reached WhatsApp (status ERROR), so WhatsApp cannot act on it."
    ),
    ErrorCode(409, "message_not_own", "Only messages sent from this WhatsApp account can be edited or deleted."),
    ErrorCode(409, "message_not_editable", "Only text messages can be edited."),
    ErrorCode(
        409,
        "edit_window_passed",
        "WhatsApp allows edits for 15 minutes after sending (details.sentAt, details.windowSeconds).",
    ),
    ErrorCode(
        409,
        "delete_window_passed",
        "WhatsApp allows deleting for everyone for 2 days after sending (details.sentAt, details.windowSeconds).",
    ),
    ErrorCode(
        409, "session_missing_on_waha", "WAHA lost the session (e.g. its storage was wiped); start it to re-create it."
    ),
    ErrorCode(
        405,
        "method_not_allowed",
        "The path exists but not with this method; the Allow header lists the methods it takes.",
    ),
    ErrorCode(
        400, "not_supported", "The WAHA server's engine does not support this (e.g. forwarding on some engines)."
    ),
    ErrorCode(
        413, "payload_too_large", "The request body (an upload, or inline media) is larger than the server accepts."
    ),
    ErrorCode(
        429,
        "rate_limited",
        "Too many calls for this credential, too many failed authentications from this address, "
        "or sends too fast on this session; see Retry-After.",
    ),
    ErrorCode(503, "waha_unavailable", "WhatsApp (WAHA) is down, slow or busy; retry after Retry-After seconds."),
    *INBOX_ERROR_CODES,
    *SCHEDULED_ERROR_CODES,
    *PRIVACY_ERROR_CODES,
    *CAMPAIGN_ERROR_CODES,
    *USAGE_ERROR_CODES,
    *OPT_OUT_ERROR_CODES,
)
