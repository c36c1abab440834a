"""Contact avatars: WhatsApp's profile picture, fetched once and kept in the portal's own storage.

The inbox never waits for a picture: `avatar_url` answers the stored file's URL or None (the page then shows
initials). `fetch_due` runs as the scheduled job `portal.jobs.inbox.fetch_avatars`: it fetches the pictures of
contacts never tried, and refreshes them after AVATAR_REFRESH. WAHA is asked for the picture's URL
(`get_profile_picture_url`); the picture itself is downloaded from WhatsApp's CDN
through the portal's hardened HTTP client. A picture that cannot be fetched is marked `failed` and tried again
after AVATAR_RETRY.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import IO, Any

import sqlalchemy as sa
from flask import url_for
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from portal.extensions import db
from portal.i18n import N_
from portal.models import Chat, Contact, Tenant, WahaSession, get_for_tenant, utcnow
from portal.net import http as outbound
from portal.services.destinations import allow_private
from portal.services.errors import NotFound
from portal.storage.serving import StoredFile
from portal.waha import WahaClient

log = logging.getLogger(__name__)

AVATAR_REFRESH = timedelta(days=7)
AVATAR_RETRY = timedelta(days=1)
AVATAR_MAX_BYTES = 1024 * 1024
AVATAR_TIMEOUT_SECONDS = 10
_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
_BY_EXTENSION = {ext: mimetype for mimetype, ext in _TYPES.items()}


def avatar_url(contact: Contact | None, endpoint: str = "api.contact_avatar") -> str | None:
    """Where the contact's stored picture is served (`endpoint` takes contact_id), or None: show initials."""
    if contact is None or contact.avatar_state != "stored" or not contact.avatar_key:
        return None
    return url_for(endpoint, contact_id=contact.id)


def avatar_file(tenant: Tenant, contact_id: Any) -> StoredFile:
    """The stored picture of one of the tenant's contacts, to serve; NotFound avatar_not_found."""
    contact = get_for_tenant(db.session, Contact, tenant.id, contact_id)
    if contact is None or contact.avatar_state != "stored" or not contact.avatar_key:
        raise avatar_gone()
    mimetype = _BY_EXTENSION.get(contact.avatar_key.rsplit(".", 1)[-1], "application/octet-stream")
    return StoredFile(contact.avatar_key, mimetype, "")


def avatar_gone() -> NotFound:
    return NotFound(N_("This contact has no stored picture."), code="avatar_not_found")


def open_avatar(tenant: Tenant, contact_id: Any) -> tuple[IO[bytes], str]:
    """The stored picture of one of the tenant's contacts opened: (file, mimetype); NotFound avatar_not_found."""
    from portal.storage import storage

    stored = avatar_file(tenant, contact_id)
    try:
        return storage().open(stored.key), stored.mimetype
    except FileNotFoundError:
        raise avatar_gone() from None


def profile_picture_url(client: WahaClient, session: str, contact_id: str) -> str | None:
    """WhatsApp's URL of the contact's profile picture (None: they have none)."""
    return client.get_profile_picture_url(session, contact_id)


def store_avatar(contact: Contact, url: str | None) -> str:
    """Download the picture at `url` into storage and record the outcome on the contact: "stored", "none" (no
    picture) or "failed" (commits)."""
    from portal.storage import new_key, storage

    contact.avatar_fetched_at = utcnow()
    if not url:
        contact.avatar_state = "none"
        db.session.commit()
        return "none"
    try:
        answer = outbound.request(
            "GET",
            url,
            allow_private=allow_private(),
            timeout=AVATAR_TIMEOUT_SECONDS,
            max_bytes=AVATAR_MAX_BYTES,
            headers={"Accept": "image/*"},
        )
        mimetype = answer.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if not answer.ok or answer.truncated or mimetype not in _TYPES or not answer.body:
            raise ValueError(f"answer {answer.status} {mimetype or 'without a type'}, {len(answer.body)} bytes")
    except Exception as exc:
        log.info("avatar of contact %s not fetched: %s", contact.id, exc)
        contact.avatar_state = "failed"
        db.session.commit()
        return "failed"
    key = new_key(contact.tenant_id, "a", f".{_TYPES[mimetype]}")
    storage().save(key, answer.body, mimetype)
    previous = contact.avatar_key
    contact.avatar_key, contact.avatar_state = key, "stored"
    try:
        db.session.commit()
    except StaleDataError:
        # the contact was erased while the picture downloaded: the picture must not outlive it
        db.session.rollback()
        storage().delete(key)
        return "skipped"
    if previous and previous != key:
        storage().delete(previous)  # after the commit: the row never names a deleted file
    return "stored"


def fetch_avatar(contact_id: int, session_id: str) -> str:
    """Ask WAHA (through `session_id`) for the contact's picture and store it; the outcome ("stored", "none",
    "failed", or "skipped" when the contact or session is gone or the session is not WORKING)."""
    from portal.services.servers import client_for
    from portal.waha import errors as waha_errors

    contact = db.session.get(Contact, contact_id)
    session = db.session.get(WahaSession, session_id)
    if contact is None or session is None or session.tenant_id != contact.tenant_id or session.status != "WORKING":
        return "skipped"
    try:
        url = profile_picture_url(client_for(session.server), session.external_name, contact.chat_id)
    except waha_errors.WahaError as exc:
        log.info("WAHA gave no picture for contact %s: %s", contact.id, exc)
        contact.avatar_state, contact.avatar_fetched_at = "failed", utcnow()
        db.session.commit()
        return "failed"
    return store_avatar(contact, url)


def due(limit: int = 20) -> list[tuple[int, str]]:
    """(contact id, session id) of contacts whose picture is to be fetched: never tried, older than
    AVATAR_REFRESH, or failed longer than AVATAR_RETRY ago; each with a WORKING session that has their chat."""
    now = utcnow()
    stale = sa.or_(
        Contact.avatar_state.is_(None),
        sa.and_(Contact.avatar_state.in_(("stored", "none")), Contact.avatar_fetched_at < now - AVATAR_REFRESH),
        sa.and_(Contact.avatar_state == "failed", Contact.avatar_fetched_at < now - AVATAR_RETRY),
    )
    session_id = (
        select(Chat.session_id)
        .join(WahaSession, WahaSession.id == Chat.session_id)
        .where(Chat.tenant_id == Contact.tenant_id, Chat.chat_id == Contact.chat_id, WahaSession.status == "WORKING")
        .order_by(Chat.last_activity_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(Contact.id, session_id.label("session_id"))
        .where(stale, session_id.is_not(None))
        .order_by(Contact.id.desc())
        .limit(limit)
    ).all()
    return [(row.id, row.session_id) for row in rows]


def fetch_due(limit: int = 20) -> dict[str, int]:
    """The job hook: fetch the pictures `due` names; counts per outcome."""
    counts: dict[str, int] = {}
    for contact_id, session_id in due(limit):
        outcome = fetch_avatar(contact_id, session_id)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
