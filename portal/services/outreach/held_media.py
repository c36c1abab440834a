"""The uploaded file of a scheduled message, kept in the portal's file store until the message is sent.

A send later with a file given as data (the API's multipart upload or base64 media, the portal's send form)
would otherwise carry the whole file, base64 encoded, in its `send_queue` row, read again by every list of
scheduled messages. `hold` saves the bytes under a key of the tenant's and leaves the row a reference (`held`
plus the file's description); `for_send` reads them back when the dispatcher sends the item (a repeat after a
crash reads them again: the file stays until the item is settled); `release`, a send queue listener, deletes the
file once the item is sent, failed, cancelled or skipped.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from portal.i18n import N_
from portal.models.outreach import SETTLED_STATES
from portal.services.errors import NotFound, StorageDown
from portal.services.outreach.rules import on_settled

log = logging.getLogger(__name__)

KIND = "scheduled"
HELD = "held"


def hold(tenant_id: int, media: dict[str, Any] | None) -> dict[str, Any] | None:
    """`media` with its base64 `data` moved into the file store (checked media: `clean_media` ran); media by URL
    and no media are kept as they are."""
    if not media or not media.get("data"):
        return media
    from portal.storage import new_key, storage
    from portal.storage.errors import StorageUnavailable

    try:
        content = base64.b64decode(media["data"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        return media  # not ours to judge here: the send refuses it as it would now
    key = new_key(tenant_id, KIND, "")
    try:
        storage().save(key, content, str(media.get("mimetype") or "application/octet-stream"))
    except StorageUnavailable:
        raise StorageDown() from None
    held = {name: value for name, value in media.items() if name != "data"}
    held[HELD] = key
    return held


def drop(media: dict[str, Any] | None) -> None:
    """Delete a held file (the item that held it is settled, or was never written); a missing file is fine."""
    key = media.get(HELD) if isinstance(media, dict) else None
    if not key:
        return
    from portal.storage import storage

    try:
        storage().delete(str(key))
    except FileNotFoundError:
        pass
    except OSError as exc:  # the store is down: the file stays behind, which costs space only
        log.warning("held file %s of a scheduled message not deleted: %s", key, exc)


def for_send(media: dict[str, Any] | None) -> dict[str, Any] | None:
    """The media the send service takes: a held file read back as base64 data. NotFound "media_not_found" when
    the store lost it (the item fails); StorageDown when the store cannot be reached (the item is retried)."""
    if not isinstance(media, dict) or HELD not in media:
        return media
    from portal.storage import storage
    from portal.storage.errors import StorageUnavailable

    try:
        with storage().open(str(media[HELD])) as handle:
            content = handle.read()
    except FileNotFoundError:
        raise NotFound(N_("The file of this scheduled message is no longer stored."), code="media_not_found") from None
    except StorageUnavailable:
        raise StorageDown() from None
    sent = {name: value for name, value in media.items() if name != HELD}
    sent["data"] = base64.b64encode(content).decode("ascii")
    return sent


@on_settled
def release(item: Any) -> None:
    """Delete the held file of an item that is settled (send queue listener)."""
    if getattr(item, "state", None) in SETTLED_STATES:
        drop(getattr(item, "media", None))
