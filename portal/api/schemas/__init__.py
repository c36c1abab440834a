"""DTOs of the /waha API: what integrators send and what they get back.

The same pydantic models validate requests, shape responses and generate the OpenAPI document
(`portal.api.openapi`), so the docs cannot drift from the code. Request models reject unknown fields.

One module per area: `common` (bases, input patterns and limits, pages, error and health bodies, `validate`),
`sessions`, `messages` and `webhooks`; every name is re-exported here.
"""

from portal.api.schemas.common import (
    BASE64_PATTERN,
    CHAT_ID_PATTERN,
    CURSOR_PATTERN,
    MAX_PAGE,
    MAX_TEXT,
    PHONE_PATTERN,
    PHONE_RULE,
    RECIPIENT_DOC,
    RECIPIENT_PATTERN,
    RECIPIENT_RULE,
    URL_PATTERN,
    YEAR_PATTERN,
    ErrorBody,
    ErrorResponse,
    FieldError,
    HealthResponse,
    Page,
    Request,
    Response,
    ServerHealth,
    check_recipient,
    string_rule,
    validate,
)
from portal.api.schemas.messages import (
    MEDIA_KINDS,
    MESSAGE_STATUSES,
    MediaDto,
    MediaInfo,
    MediaUploadForm,
    MessageListQuery,
    MessagePage,
    MessageResponse,
    SendMessageDto,
    TenantMessageListQuery,
)
from portal.api.schemas.sessions import (
    CreateSessionDto,
    ImageQuery,
    PairingCodeDto,
    PairingCodeResponse,
    QrResponse,
    ScreenResponse,
    SessionCreatedDto,
    SessionListQuery,
    SessionPage,
    SessionResponseDto,
    WebhookSecretResponse,
)
from portal.api.schemas.webhooks import (
    DeliveryListQuery,
    DeliveryPage,
    WebhookDeliveryResponse,
    WebhookEndpointList,
    WebhookEndpointResponse,
)

__all__ = [
    "CHAT_ID_PATTERN", "CURSOR_PATTERN", "MAX_PAGE", "MAX_TEXT", "MEDIA_KINDS", "MESSAGE_STATUSES", "PHONE_PATTERN",
    "RECIPIENT_DOC", "RECIPIENT_PATTERN", "URL_PATTERN", "YEAR_PATTERN", "BASE64_PATTERN", "PHONE_RULE", "RECIPIENT_RULE",
    "CreateSessionDto", "DeliveryListQuery", "DeliveryPage", "ErrorBody", "ErrorResponse", "FieldError",
    "HealthResponse", "ImageQuery", "MediaDto", "MediaInfo", "MediaUploadForm", "MessageListQuery", "MessagePage",
    "MessageResponse", "Page", "PairingCodeDto", "PairingCodeResponse", "QrResponse", "Request", "Response",
    "ScreenResponse", "SendMessageDto", "ServerHealth", "SessionCreatedDto", "SessionListQuery", "SessionPage",
    "SessionResponseDto", "TenantMessageListQuery", "WebhookDeliveryResponse", "WebhookEndpointList",
    "WebhookEndpointResponse", "WebhookSecretResponse", "check_recipient", "string_rule", "validate",
]
