"""The stored files that go with rows being deleted: which keys a session, a tenant or a contact holds, and their
removal from the store once the rows are gone.

Deleting is two steps on purpose: collect the keys in the transaction that deletes the rows, then delete the files
after it commits (`delete_files`), so a rolled-back delete never leaves a row naming a file that is gone. A file
the store cannot delete at that moment (the bucket unreachable) is logged and left behind; it is named by no row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import Contact, Message, QueuedSend

log = logging.getLogger(__name__)


def _media_keys(*conditions: Any) -> list[str]:
    rows = db.session.scalars(select(Message.media).where(Message.media.is_not(None), *conditions))
    return [str(media["key"]) for media in rows if isinstance(media, dict) and media.get("key")]


def _held_keys(*conditions: Any) -> list[str]:
    """Files of scheduled messages waiting in the send queue (services.outreach.held_media)."""
    rows = db.session.scalars(
        select(QueuedSend.media).where(QueuedSend.scheduled.is_(True), QueuedSend.media.is_not(None), *conditions)
    )
    return [str(media["held"]) for media in rows if isinstance(media, dict) and media.get("held")]


def session_keys(session_id: str) -> list[str]:
    """Keys of the stored files of a session's messages and of its scheduled messages."""
    return _media_keys(Message.session_id == session_id) + _held_keys(QueuedSend.session_id == session_id)


def tenant_keys(tenant_id: int) -> list[str]:
    """Keys of every stored file of a tenant: its messages' media, its scheduled messages' files and its
    contacts' pictures."""
    avatars = db.session.scalars(
        select(Contact.avatar_key).where(Contact.tenant_id == tenant_id, Contact.avatar_key.is_not(None))
    )
    held = _held_keys(QueuedSend.tenant_id == tenant_id)
    return _media_keys(Message.tenant_id == tenant_id) + held + [str(key) for key in avatars]


def contact_keys(contact: Contact) -> list[str]:
    """Keys of a contact's stored picture and of the stored media of the messages in their chat."""
    keys = _media_keys(Message.tenant_id == contact.tenant_id, Message.chat_id == contact.chat_id)
    return keys + ([contact.avatar_key] if contact.avatar_key else [])


def delete_files(keys: Iterable[str]) -> int:
    """Delete these files from the store (after the rows naming them are committed gone); how many were deleted.
    A failure is logged per file and does not stop the others."""
    from portal.storage import storage

    store, deleted = storage(), 0
    for key in keys:
        try:
            store.delete(key)
            deleted += 1
        except Exception as exc:
            log.warning("stored file %r could not be deleted: %s", key, exc)
    return deleted
