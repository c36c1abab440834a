"""The shared inbox: one row per conversation, kept by event processing and sends, and the team's work on it.

- `upkeep`: chats and contacts written from a batch of events (one upsert per chat) and from a send;
- `chats`: the chat list (filters, search, keyset pages), one chat, assignment, resolve and reopen, marking
  read, the header badge;
- `notes`: internal notes on a chat (never sent to WhatsApp).

Contacts (`services.contacts`), their avatars (`services.avatars`) and quick replies (`services.quick_replies`)
live beside this package.
"""

from portal.services.inbox.chats import (
    BADGE_MAX,
    UNSET,
    VIEWS,
    ChatFilters,
    ChatItem,
    ChatPage,
    badge_count,
    filters_for_view,
    find_chat,
    get_chat,
    get_chat_by_id,
    list_chats,
    mark_read,
    unassign_member,
    update_chat,
)
from portal.services.inbox.notes import NOTE_MAX, NotePage, add_note, list_notes

__all__ = [
    "BADGE_MAX",
    "NOTE_MAX",
    "UNSET",
    "VIEWS",
    "ChatFilters",
    "ChatItem",
    "ChatPage",
    "NotePage",
    "add_note",
    "badge_count",
    "filters_for_view",
    "find_chat",
    "get_chat",
    "get_chat_by_id",
    "list_chats",
    "list_notes",
    "mark_read",
    "unassign_member",
    "update_chat",
]
