"""Messages of a tenant: sending through WAHA (paced, idempotent, recorded before the call) and reading the log.

- `validation`: the recipient, text, media and metadata a send asks for;
- `sending`: send_message and what happens around the WAHA call (retries under an Idempotency-Key, failures);
- `send_sql`: the hand-tuned statements of the send path;
- `reading`: one message, the message log in keyset pages, the chats of a session; the log as a person watching
  it sees it (`watch_log` and its fresh block);
- `actions`: react, edit, delete for everyone, forward; read receipts and typing (`replies`: what WhatsApp can
  act on, and the message a reply quotes).

The public names (and the private ones tests and benchmarks use) are importable from here.
"""

from portal.services.messages.actions import (
    DELETE_WINDOW,
    EDIT_WINDOW,
    delete_message,
    edit_message,
    forward_message,
    react,
    send_read_receipt,
    send_typing,
)
from portal.services.messages.reading import (
    FRESH_LIMIT,
    LOG_PAGE,
    PAGE_MAX,
    POLL_SECONDS,
    Q_MAX,
    ChatSummary,
    FreshRows,
    LiveView,
    LogFilters,
    MessagePage,
    decode_cursor,
    encode_cursor,
    fresh_since,
    get_message,
    in_flight,
    list_chats,
    list_messages,
    watch_log,
    watch_log_fresh,
)
from portal.services.messages.sending import send_message
from portal.services.messages.validation import (
    BLOCKED_DOCUMENT_TYPES,
    CAPTION_MAX,
    FILENAME_MAX,
    MEDIA_KINDS,
    MEDIA_TYPES,
    METADATA_MAX_ENTRIES,
    METADATA_VALUE_MAX,
    TEXT_MAX,
    clean_media,
    normalize_recipient,
)

__all__ = [
    "BLOCKED_DOCUMENT_TYPES",
    "CAPTION_MAX",
    "DELETE_WINDOW",
    "EDIT_WINDOW",
    "FILENAME_MAX",
    "FRESH_LIMIT",
    "LOG_PAGE",
    "MEDIA_KINDS",
    "MEDIA_TYPES",
    "METADATA_MAX_ENTRIES",
    "METADATA_VALUE_MAX",
    "PAGE_MAX",
    "POLL_SECONDS",
    "Q_MAX",
    "TEXT_MAX",
    "ChatSummary",
    "FreshRows",
    "LiveView",
    "LogFilters",
    "MessagePage",
    "clean_media",
    "decode_cursor",
    "delete_message",
    "edit_message",
    "encode_cursor",
    "fresh_since",
    "forward_message",
    "get_message",
    "in_flight",
    "list_chats",
    "list_messages",
    "normalize_recipient",
    "react",
    "send_message",
    "watch_log",
    "watch_log_fresh",
    "send_read_receipt",
    "send_typing",
]
