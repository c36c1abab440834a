"""Inbound media: which types are kept, the download from WAHA into portal storage, re-queueing, serving back.

WAHA's file URL needs its API key and expires after about 180 s, so a `fetch_media` job downloads the file as soon
as the event is processed. When that job cannot be queued (Redis down) the worker downloads at once; the sweeper
re-queues files still `pending` after a while, so no file stays pending forever (WAHA's 404 ends as
`unavailable`).

`media_kind` is the one mimetype -> kind rule (image, audio, video or document); `outgoing_media` and
`uploaded_media` the one way a door (the send page, the API's JSON and multipart sends) builds a file to send.

Media types are parsed strictly (one `type/subtype`, optional parameters, nothing else): a value such as
`video/mp4,text/html` is not a media type. Files are served back only under a type from an allow-list; any other
file goes out as `application/octet-stream`, as a download.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, BinaryIO

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from portal.extensions import db
from portal.i18n import N_
from portal.models import Message, Tenant, WahaSession, utcnow
from portal.queue import JOB_FETCH_MEDIA, QUEUE_EVENTS, enqueue_many, retry_policy
from portal.services.errors import NotFound
from portal.services.media_types import INLINE_TYPES, is_media_type
from portal.storage.serving import StoredFile

log = logging.getLogger(__name__)

REQUEUE_AFTER_SECONDS = 30  # a file still pending after this long has lost its job
REQUEUE_HORIZON = timedelta(hours=1)  # older pending files are long gone from WAHA: marked unavailable

# Inbound media kept in portal storage; anything else is recorded but not downloaded.
MEDIA_TYPES = (
    "image/",
    "audio/",
    "video/",
    "application/pdf",
    "text/plain",
    "text/csv",
    "text/vcard",
    "text/x-vcard",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.oasis.opendocument.",
    "application/zip",
)
_BLOCKED_MEDIA = ("image/svg+xml",)  # scriptable when served back to a browser

# Types a stored file is served under (anything else: application/octet-stream, as a download). None of them is
# interpreted as a document with scripts by a browser.
SERVE_INLINE = INLINE_TYPES
SERVE_DOWNLOAD = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/csv",
        "text/vcard",
        "text/x-vcard",
        "application/zip",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
    }
)
GENERIC = "application/octet-stream"

# RFC 9110 media-type: token "/" token *( OWS ";" OWS parameter ); parameter values are tokens or quoted strings.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE_RE = re.compile(
    rf"^({_TOKEN})/({_TOKEN})((?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|\"(?:[^\"\\\x00-\x1f\x7f]|\\.)*\"))*)[ \t]*$"
)


def parse_media_type(value: Any) -> str | None:
    """The lowercase `type/subtype` of a strictly valid media type; None for anything else (lists, junk)."""
    if not isinstance(value, str) or len(value) > 255:
        return None
    match = _MEDIA_TYPE_RE.match(value.strip())
    if match is None:
        return None
    return f"{match.group(1)}/{match.group(2)}".lower()


def media_type_allowed(mimetype: Any) -> bool:
    """True when an inbound file of this type is downloaded and kept."""
    base = parse_media_type(mimetype)
    return base is not None and base not in _BLOCKED_MEDIA and base.startswith(MEDIA_TYPES)


@dataclass(frozen=True)
class ServedType:
    """How a stored file goes back to a browser or an API client."""

    mimetype: str
    inline: bool


def served_type(mimetype: Any) -> ServedType:
    """The type a stored file is served under: its own when allow-listed, else a generic download."""
    base = parse_media_type(mimetype)
    if base in SERVE_INLINE:
        return ServedType(base, True)
    if base in SERVE_DOWNLOAD:
        return ServedType(base, False)
    return ServedType(GENERIC, False)


def extension(mimetype: str) -> str:
    """The file extension stored files of this type get."""
    base = parse_media_type(mimetype) or GENERIC
    special = {"image/jpeg": ".jpeg", "audio/ogg": ".ogg", "text/plain": ".txt", "audio/mpeg": ".mp3"}
    return special.get(base) or mimetypes.guess_extension(base) or ".bin"


def media_kind(mimetype: str | None) -> str:
    """The kind a file of this mimetype is sent and shown as: "image", "audio" or "video" by its major type, else
    "document" (also for no mimetype). The one rule for the web form, the API upload and the API's message view."""
    major = (mimetype or "").split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "document"


def outgoing_media(
    *,
    kind: str | None,
    url: str | None = None,
    data: str | None = None,
    mimetype: str | None = None,
    filename: str | None = None,
    caption: str | None = None,
) -> dict[str, Any]:
    """The media dict `services.messages.send_message` takes, from what a door was given (a file URL or base64
    data): empty values are left out, and without a `kind` the mimetype tells it (`media_kind`)."""
    media: dict[str, Any] = {"kind": kind or media_kind(mimetype)}
    given = {"url": url, "data": data, "mimetype": mimetype, "filename": filename, "caption": caption}
    media.update({key: value for key, value in given.items() if value})
    return media


def uploaded_media(
    content: bytes, filename: str | None, mimetype: str | None, *, kind: str | None = None, caption: str | None = None
) -> dict[str, Any]:
    """A file uploaded with a form (the portal's send page, the API's multipart upload) as the media dict
    `send_message` takes: "file" when it has no name, and a type guessed from the name when the part's
    Content-Type names no one type (none, application/octet-stream, or a range such as */* or image/*)."""
    filename = filename or "file"
    if mimetype is None or mimetype == GENERIC or not is_media_type(mimetype):
        mimetype = mimetypes.guess_type(filename)[0] or GENERIC
    data = base64.b64encode(content).decode("ascii")
    return outgoing_media(kind=kind, data=data, mimetype=mimetype, filename=filename, caption=caption)


def media_record(payload: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """What Message.media holds for an event's media, and the URL to download (None: nothing to fetch).

    A pending record keeps WAHA's URL under `source`, so the sweeper can queue the download again; it is removed
    once the download is settled (stored, refused or unavailable).
    """
    if not payload.get("hasMedia"):
        return None, None
    media = payload.get("media")
    if not isinstance(media, dict):
        return {"status": "unavailable", "reason": "WAHA did not download the file"}, None
    mimetype = media.get("mimetype")
    record: dict[str, Any] = {"mimetype": mimetype, "filename": media.get("filename")}
    if media.get("error"):
        return {**record, "status": "unavailable", "reason": str(media["error"])[:200]}, None
    if not media.get("url"):
        return {**record, "status": "unavailable", "reason": "no file URL"}, None
    if not media_type_allowed(mimetype):
        return {**record, "status": "refused", "reason": f"type {str(mimetype)[:100]!r} is not accepted"}, None
    url = str(media["url"])
    return {**record, "status": "pending", "source": url}, url


def _settle(message: Message, media: dict[str, Any], **changes: Any) -> None:
    media.pop("source", None)
    media.update(changes)
    message.media = media
    db.session.commit()


def fetch_media(message_id: int, url: str) -> str:
    """Download an inbound message's file from WAHA into portal storage (WAHA's copy expires in minutes).

    Returns the outcome: "stored", "skipped" (already settled or message gone), "refused" or "too_large".
    Transient WAHA failures raise, so the job is retried.
    """
    from portal.services.servers import client_for
    from portal.storage import new_key, storage
    from portal.waha import errors as waha_errors

    message = db.session.get(Message, message_id)
    if message is None or not isinstance(message.media, dict) or message.media.get("status") != "pending":
        return "skipped"
    session = db.session.get(WahaSession, message.session_id)
    if session is None:
        return "skipped"
    media = dict(message.media)
    max_bytes = current_app.config["MEDIA_MAX_BYTES"]
    try:
        content, content_type = client_for(session.server).download_media(url, max_bytes=max_bytes)
    except waha_errors.WahaMediaTooLarge:
        _settle(message, media, status="refused", reason=f"larger than {max_bytes} bytes")
        return "too_large"
    except waha_errors.WahaNotFound:
        _settle(message, media, status="unavailable", reason="expired on WAHA before it could be fetched")
        return "skipped"
    except ValueError as exc:
        _settle(message, media, status="refused", reason=str(exc)[:200])
        return "refused"
    declared = parse_media_type(content_type)
    mimetype = parse_media_type(media.get("mimetype")) or declared
    if not media_type_allowed(mimetype) or not (declared in (GENERIC, None) or media_type_allowed(declared)):
        _settle(message, media, status="refused", reason=f"type {str(content_type)[:100]!r} is not accepted")
        return "refused"
    assert mimetype is not None
    from portal.services import quotas

    tenant = db.session.get(Tenant, message.tenant_id)
    if tenant is not None and not quotas.take_media_bytes(tenant, len(content)):
        # over the plan's media storage: the message stays, its file is not kept
        _settle(message, media, status="refused", reason="media storage quota exceeded", quota_exceeded=True)
        return "over_quota"
    key = new_key(message.tenant_id, "m", extension(mimetype))
    storage().save(key, content, mimetype)
    try:
        _settle(
            message,
            media,
            status="stored",
            key=key,
            mimetype=mimetype,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
    except StaleDataError:
        # the row went while the file downloaded (a contact's erase, a session's delete, retention): the file
        # must not outlive it
        db.session.rollback()
        storage().delete(key)
        return "skipped"
    return "stored"


# The download job's retries (seconds after each failed try): WAHA keeps a file for 180 s, so they come quickly.
FETCH_RETRY_DELAYS = (5, 20, 45)
# A queued download is marked in Redis for this long: the sweeper does not queue it again while its job may still
# wait in a busy queue or between its retries (a download stuck behind a backlog is queued again at most once per
# window). Long enough for the retries and three tries of at most a WAHA timeout each; short enough that a job lost
# with a dead worker is queued again (by the sweeper, every 15 s) while WAHA still has the file.
QUEUED_MARK_SECONDS = sum(FETCH_RETRY_DELAYS) + 30
_QUEUED_MARK = "media-queued:"


def _mark_queued(message_ids: list[int]) -> list[int]:
    """Mark downloads as queued; returns the ids that were not marked already (all of them if Redis is away)."""
    import redis

    from portal.extensions import redis_store

    try:
        with redis_store.client.pipeline(transaction=False) as pipe:
            for message_id in message_ids:
                pipe.set(f"{_QUEUED_MARK}{message_id}", 1, nx=True, ex=QUEUED_MARK_SECONDS)
            fresh = pipe.execute()
    except redis.RedisError:
        return message_ids
    return [message_id for message_id, marked in zip(message_ids, fresh, strict=True) if marked]


def queue_downloads(jobs: list[tuple[int, str]], *, again: bool = False) -> None:
    """Queue a download per (message id, URL); when the queue is unavailable, download now in this process.
    `again` (the sweeper): only those not queued within QUEUED_MARK_SECONDS, so a backlog is not queued twice."""
    if not jobs:
        return
    fresh = set(_mark_queued([message_id for message_id, _ in jobs]))
    if again:
        jobs = [job for job in jobs if job[0] in fresh]
        if not jobs:
            return
    try:
        enqueue_many(
            [(JOB_FETCH_MEDIA, job) for job in jobs],
            queue=QUEUE_EVENTS,
            retry=retry_policy(len(FETCH_RETRY_DELAYS), FETCH_RETRY_DELAYS),
        )
        return
    except Exception as exc:
        log.warning("could not queue %d media download(s) (%s); downloading them now", len(jobs), type(exc).__name__)
    for message_id, url in jobs:
        try:
            fetch_media(message_id, url)
        except Exception:
            db.session.rollback()
            # still pending: the sweeper queues it again
            log.warning("media of message %s could not be fetched now", message_id, exc_info=True)


def pending_media_clause() -> Any:
    """SQL for "this message's file is pending", matching the partial index ix_messages_media_pending."""
    if db.engine.dialect.name == "postgresql":
        return sa.text("(messages.media ->> 'status') = 'pending'")
    return sa.text("json_extract(messages.media, '$.status') = 'pending'")


def requeue_pending(older_than: int = REQUEUE_AFTER_SECONDS) -> int:
    """Queue the download again for files pending longer than `older_than` seconds (their job was lost or never
    queued); files pending beyond the horizon are recorded unavailable. Returns how many were queued."""
    now = utcnow()
    rows = db.session.scalars(
        select(Message)
        .where(
            pending_media_clause(),
            Message.created_at < now - timedelta(seconds=older_than),
        )
        .order_by(Message.id)
        .limit(2000)
    ).all()
    jobs: list[tuple[int, str]] = []
    for message in rows:
        media = message.media if isinstance(message.media, dict) else {}
        if media.get("status") != "pending":
            continue
        source = media.get("source")
        if not source or message.created_at < now - REQUEUE_HORIZON:
            _settle(message, dict(media), status="unavailable", reason="could not be fetched in time")
            continue
        jobs.append((message.id, str(source)))
    db.session.commit()
    if jobs:
        log.info("%d media file(s) still pending; queueing their download again unless queued lately", len(jobs))
        queue_downloads(jobs, again=True)
    return len(jobs)


def media_file(tenant: Tenant, message_id: Any) -> StoredFile:
    """The stored file of a tenant's message, to serve (`storage.serving.send_stored`): its key, the mimetype to
    serve (one of the allow-listed types or application/octet-stream, see `served_type`) and its download name.

    NotFound "message_not_found" for another tenant's or an unknown message; NotFound "media_not_found" when the
    message has no stored file (none, not fetched yet, refused, or expired before it could be fetched).
    """
    from portal.services.messages import get_message

    message = get_message(tenant, message_id)
    media = message.media if isinstance(message.media, dict) else {}
    key = media.get("key")
    if media.get("status") != "stored" or not key:
        raise NotFound(
            N_("This message has no stored file."), code="media_not_found", details={"status": media.get("status")}
        )
    mimetype = served_type(media.get("mimetype")).mimetype
    filename = media.get("filename") or f"message-{message.id}{extension(mimetype)}"
    return StoredFile(str(key), mimetype, os.path.basename(str(filename)))


def media_gone() -> NotFound:
    """The 404 of a message whose file the store no longer holds."""
    return NotFound(N_("The file of this message is no longer stored."), code="media_not_found")


def media_for_message(tenant: Tenant, message_id: Any) -> tuple[BinaryIO, str, str]:
    """The stored file of a tenant's message opened: (binary file, mimetype to serve, download filename); the
    errors of `media_file`, and `media_gone` when the store no longer holds it."""
    from portal.storage import storage

    stored = media_file(tenant, message_id)
    try:
        handle = storage().open(stored.key)
    except FileNotFoundError:
        raise media_gone() from None
    return handle, stored.mimetype, stored.download_name
