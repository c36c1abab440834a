"""The people a tenant talks to: the contact list, the display-name rule, and whether a number is on WhatsApp.

Contacts are written by event processing (services.inbox.upkeep: push name, first and last message) and by
`check_exists`, which asks WAHA (`contacts/check-exists`) and keeps the answer on the contact row for
CHECK_FRESH (7 days). The send path calls `ensure_on_whatsapp` before the first message to a new number, so a
number that is not on WhatsApp is refused (422 `not_on_whatsapp`) instead of a send that never arrives; it asks
WAHA only when the session has no chat with the number yet and no fresh answer is stored.

Members tag contacts (`set_tags`); saved names and push names are imported from WhatsApp's contact list by
`services.contacts_sync`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
import sqlalchemy as sa
from sqlalchemy import select

from portal import pagination
from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import Chat, Contact, Tenant, get_for_tenant, utcnow
from portal.services import audit, recipients, upstream
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid, NotFound, ServiceError
from portal.services.recipients import phone_of
from portal.services.sessions import get_session
from portal.services.waha_errors import map_waha_error
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

CHECK_FRESH = timedelta(days=7)
PAGE_MAX = 200
Q_MAX = 100
_CURSOR_PREFIX = "contact:"


class NotOnWhatsApp(ServiceError):
    """WhatsApp says the number has no account: a message to it would never arrive."""

    status = 422
    code = "not_on_whatsapp"


def format_number(chat_id: str) -> str:
    """A person's chat id as people write the number ("+49 170 1234567"); other ids without their suffix."""
    digits = phone_of(chat_id)
    if digits is None:
        return chat_id.split("@", 1)[0]
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return "+" + digits
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def display_name(saved_name: str | None, push_name: str | None, chat_id: str) -> str:
    """The one rule for the name shown for a chat or contact: the saved contact name, else the WhatsApp push
    name, else the formatted number."""
    for name in (saved_name, push_name):
        if name and name.strip():
            return name.strip()
    return format_number(chat_id)


def name_of(contact: Contact) -> str:
    return display_name(contact.saved_name, contact.push_name, contact.chat_id)


# ---------------------------------------------------------------------------------------------- the list


@dataclass(frozen=True)
class ContactPage:
    items: list[Contact]
    next_cursor: str | None


def like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_digits(q: str) -> str | None:
    """The digits of a search that reads as (part of) a phone number ("+49 170-12" -> "4917012"), else None."""
    digits = "".join(ch for ch in q if ch in "0123456789")
    rest = "".join(ch for ch in q if ch not in "0123456789" and ch not in " +-().")
    return digits if len(digits) >= 3 and not rest else None


def check_page(q: str | None, limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= PAGE_MAX:
        raise Invalid.field("limit", N_f("Limit must be between 1 and %(PAGE_MAX)s.", PAGE_MAX=PAGE_MAX))
    if q is not None and len(q) > Q_MAX:
        raise Invalid.field("q", N_f("The search text must be at most %(Q_MAX)s characters.", Q_MAX=Q_MAX))


def list_contacts(tenant: Tenant, *, q: str | None = None, cursor: str | None = None, limit: int = 50) -> ContactPage:
    """A page of the tenant's contacts, newest first; `q` searches names and numbers (case-insensitive)."""
    check_page(q, limit)
    stmt = filtered_contacts(tenant, q)
    items, next_cursor = pagination.id_page(db.session, stmt, Contact.id, cursor, _CURSOR_PREFIX, limit)
    return ContactPage(items=items, next_cursor=next_cursor)


def filtered_contacts(tenant: Tenant, q: str | None, *columns: Any) -> Any:
    """The tenant's contacts (whole rows, or only `columns`) whose names or number match `q`, unordered: the
    contacts page and its CSV export read the same rows."""
    stmt = select(*columns) if columns else select(Contact)
    stmt = stmt.where(Contact.tenant_id == tenant.id)
    if q:
        pattern = like_pattern(q)
        found = [Contact.saved_name.ilike(pattern, escape="\\"), Contact.push_name.ilike(pattern, escape="\\")]
        digits = search_digits(q)
        if digits:
            found.append(Contact.chat_id.like(f"%{digits}%"))
        stmt = stmt.where(sa.or_(*found))
    return stmt


def get_contact(tenant: Tenant, chat_id: str) -> Contact | None:
    return db.session.scalar(select(Contact).where(Contact.tenant_id == tenant.id, Contact.chat_id == chat_id))


# ---------------------------------------------------------------------------------------------- on WhatsApp?


@dataclass(frozen=True)
class CheckResult:
    exists: bool
    chat_id: str | None


def _fresh(checked_at: datetime | None, now: datetime) -> bool:
    return checked_at is not None and now - checked_at < CHECK_FRESH


def _remember(tenant_id: int, chat_id: str, exists: bool, now: datetime) -> None:
    """Keep WhatsApp's answer on the contact row (one upsert; it commits itself on an autocommit connection)."""
    from portal.services.inbox.upkeep import insert_for  # the inbox package imports this module

    stmt = insert_for(Contact)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Contact.tenant_id, Contact.chat_id],
        set_={"wa_exists": stmt.excluded.wa_exists, "exists_checked_at": now, "updated_at": now},
    )
    db.session.execute(
        stmt,
        {
            "tenant_id": tenant_id,
            "chat_id": chat_id,
            "phone": phone_of(chat_id),
            "tags": [],
            "wa_exists": exists,
            "exists_checked_at": now,
            "created_at": now,
            "updated_at": now,
        },
    )


def _ask_waha(server: Any, external_name: str, digits: str) -> bool:
    from portal.services.servers import client_for

    return bool(client_for(server).check_number(external_name, digits)["numberExists"])


def _refusal(chat_id: str) -> NotOnWhatsApp:
    return NotOnWhatsApp(
        N_f("%(format_number)s is not on WhatsApp; check the number.", format_number=format_number(chat_id)),
        details={"chatId": chat_id, "fields": [{"field": "to", "message": "This number is not on WhatsApp."}]},
    )


def ensure_on_whatsapp(tenant_id: int, target: Any, chat_id: str) -> waha_errors.WahaUnavailable | None:
    """Before a send through `target` (send_sql._SendTarget, which carries what the portal knows of the
    recipient): NotOnWhatsApp when WhatsApp says the number has no account.

    No WAHA call for groups and linked ids, when the session already has a chat with the number (whose last
    message did not fail), or when an answer younger than CHECK_FRESH is stored. When WAHA is down (no
    connection, breaker open, 503) the error is returned: the send is then recorded and failed as never sent,
    without a second call to a WAHA that is down. Any other failure of the check (a timeout: check-exists asks
    WhatsApp's servers; an engine without the call) lets the send go ahead; nothing is stored then.
    """
    digits = phone_of(chat_id)
    if digits is None or target.chat_known:
        return None
    now = utcnow()
    if _fresh(target.exists_checked_at, now):
        if target.wa_exists is False:
            raise _refusal(chat_id)
        return None
    try:
        exists = _ask_waha(target.server, target.external_name, digits)
    except waha_errors.WahaError as exc:
        if isinstance(exc, waha_errors.WahaUnavailable) and upstream.send_outcome(exc) == upstream.UNSENT:
            return exc  # WAHA is down (refused, breaker open, 503): the send would not get through either
        # a slow answer (WhatsApp itself is asked) or an engine without the call: the send may still work
        log.info("check-exists before a first send failed (%s); sending anyway", type(exc).__name__)
        return None
    _remember(tenant_id, chat_id, exists, now)
    if not exists:
        db.session.commit()  # the answer is kept even though the send stops here
        raise _refusal(chat_id)
    return None


def check_exists(tenant: Tenant, session_id: Any, phone: Any) -> CheckResult:
    """Whether `phone` has a WhatsApp account, asked through the tenant's session (which must be WORKING) unless
    a fresh answer is stored; the answer is kept on the contact row for CHECK_FRESH."""
    session = get_session(tenant, session_id)
    digits = recipients.phone_digits(phone, "phone")
    chat_id = f"{digits}@c.us"
    now = utcnow()
    contact = get_contact(tenant, chat_id)
    if contact is not None and contact.wa_exists is not None and _fresh(contact.exists_checked_at, now):
        return CheckResult(exists=contact.wa_exists, chat_id=chat_id if contact.wa_exists else None)
    if session.status != "WORKING":
        raise Conflict(
            N_f("The session is %(status)s; it must be WORKING to ask WhatsApp.", status=session.status),
            code="session_not_ready",
            details={"status": session.status, "expected": ["WORKING"]},
        )
    try:
        exists = _ask_waha(session.server, session.external_name, digits)
    except waha_errors.WahaError as exc:
        raise map_waha_error(exc, session) from exc
    _remember(tenant.id, chat_id, exists, now)
    db.session.commit()
    return CheckResult(exists=exists, chat_id=chat_id if exists else None)


# ---------------------------------------------------------------------------------------------- tags and chats

TAGS_MAX = 20
TAG_MAX = 32


def get_contact_by_id(tenant: Tenant, contact_id: Any) -> Contact:
    """One of the tenant's contacts by row id; another tenant's (or an id that cannot be one) is NotFound."""
    contact = get_for_tenant(db.session, Contact, tenant.id, contact_id)
    if contact is None:
        raise NotFound(N_("No such contact."), code="contact_not_found")
    return contact


def clean_tags(tags: Any) -> list[str]:
    """Tags as stored: each trimmed, empty ones dropped, duplicates (whatever their case) kept once in the order
    given; Invalid (field "tags") for more than TAGS_MAX tags, one over TAG_MAX characters or a non-text tag."""
    if not isinstance(tags, list | tuple) or not all(isinstance(tag, str) for tag in tags):
        raise Invalid.field("tags", N_("Tags must be a list of words."))
    cleaned: dict[str, str] = {}
    for tag in tags:
        tag = " ".join(tag.split())
        if len(tag) > TAG_MAX:
            raise Invalid.field(
                "tags",
                N_f(
                    "A tag may have at most %(TAG_MAX)s characters: “%(tag)s…” is longer.",
                    TAG_MAX=TAG_MAX,
                    tag=tag[:TAG_MAX],
                ),
            )
        if tag:
            cleaned.setdefault(tag.casefold(), tag)
    if len(cleaned) > TAGS_MAX:
        raise Invalid.field("tags", N_f("A contact may have at most %(TAGS_MAX)s tags.", TAGS_MAX=TAGS_MAX))
    return list(cleaned.values())


def set_tags(tenant: Tenant, contact_id: Any, actor: Actor, tags: Any) -> Contact:
    """Replace a contact's tags (see clean_tags); audited as contact.tags with the tags before and after."""
    contact = get_contact_by_id(tenant, contact_id)
    cleaned = clean_tags(tags)
    before = list(contact.tags or [])
    if cleaned != before:
        contact.tags = cleaned
        audit.record(
            tenant.id,
            "contact.tags",
            actor,
            target_type="contact",
            target_id=contact.id,
            details={"chat_id": contact.chat_id, "before": before, "after": cleaned},
        )
        db.session.commit()
    return contact


def newest_chats(tenant: Tenant, chat_ids: list[str]) -> dict[str, int]:
    """For each of these chat ids, the row id of its most recently active chat in the inbox (any session)."""
    if not chat_ids:
        return {}
    stmt = (
        select(Chat.chat_id, Chat.id)
        .where(Chat.tenant_id == tenant.id, Chat.chat_id.in_(chat_ids))
        .order_by(Chat.last_activity_at.desc().nulls_last(), Chat.id.desc())
    )
    found: dict[str, int] = {}
    for chat_id, row_id in db.session.execute(stmt):
        found.setdefault(chat_id, row_id)
    return found


@dataclass(frozen=True)
class ContactEntry:
    """A contact as the contacts page shows it: the row, its name by the display rule, its number as people
    write it (None for a linked id only) and the row id of its most recent chat in the inbox (None: no chat)."""

    contact: Contact
    name: str
    number: str | None
    chat_row_id: int | None


def browse_contacts(
    tenant: Tenant, *, q: str | None = None, cursor: str | None = None, limit: int = 50
) -> tuple[list[ContactEntry], str | None]:
    """A page of list_contacts as the contacts page shows it, and the cursor of the next page."""
    found = list_contacts(tenant, q=q, cursor=cursor, limit=limit)
    chats = newest_chats(tenant, [c.chat_id for c in found.items])
    entries = [
        ContactEntry(
            contact=c,
            name=name_of(c),
            number=format_number(f"{c.phone}@c.us") if c.phone else None,
            chat_row_id=chats.get(c.chat_id),
        )
        for c in found.items
    ]
    return entries, found.next_cursor
