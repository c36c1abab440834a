"""Whose data a request is about: one phone number (or one contact row) of a tenant, and every chat id under which
the tenant's rows name that person (`<digits>@c.us` and the contact's linked id)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.i18n import N_
from portal.models import Campaign, CampaignRecipient, Chat, Contact, Message, OptOut, QueuedSend, Tenant
from portal.services import recipients
from portal.services.errors import NotFound
from portal.services.recipients import phone_of


@dataclass(frozen=True)
class Subject:
    """The person a data request is about, as the tenant's rows name them."""

    tenant_id: int
    phone: str | None  # E.164 digits, when known
    chat_ids: tuple[str, ...]
    contact: Contact | None

    @property
    def label(self) -> str:
        return f"+{self.phone}" if self.phone else self.chat_ids[0]

    @property
    def masked(self) -> str:
        """The number with all but its country code's first digits and the last two hidden: "+49*******67"."""
        shown = self.phone or self.chat_ids[0].split("@", 1)[0]
        if len(shown) <= 4:
            return "*" * len(shown)
        return ("+" if self.phone else "") + shown[:2] + "*" * (len(shown) - 4) + shown[-2:]

    @property
    def digest(self) -> str:
        """A keyed hash of the number: the audit log can tell whether a later request is about the same person,
        without holding the number (a plain hash of a phone number is reversed by trying them all)."""
        key = str(current_app.config["SECRET_KEY"]).encode()
        return hmac.new(key, self.label.encode(), hashlib.sha256).hexdigest()[:32]


def _known(tenant_id: int, chat_ids: list[str]) -> bool:
    campaign_ids = select(Campaign.id).where(Campaign.tenant_id == tenant_id)
    checks = [
        select(Chat.id).where(Chat.tenant_id == tenant_id, Chat.chat_id.in_(chat_ids)),
        select(Message.id).where(Message.tenant_id == tenant_id, Message.chat_id.in_(chat_ids)),
        select(QueuedSend.id).where(QueuedSend.tenant_id == tenant_id, QueuedSend.chat_id.in_(chat_ids)),
        select(OptOut.id).where(OptOut.tenant_id == tenant_id, OptOut.chat_id.in_(chat_ids)),
        select(CampaignRecipient.id).where(
            CampaignRecipient.campaign_id.in_(campaign_ids), CampaignRecipient.chat_id.in_(chat_ids)
        ),
    ]
    return any(db.session.scalar(sa.select(sa.exists(check))) for check in checks)


def _subject(tenant_id: int, phone: str | None, contact: Contact | None) -> Subject:
    ids: list[str] = []
    if phone:
        ids.append(f"{phone}@c.us")
    if contact is not None:
        ids += [contact.chat_id] + ([contact.lid] if contact.lid else [])
    return Subject(tenant_id=tenant_id, phone=phone, chat_ids=tuple(dict.fromkeys(ids)), contact=contact)


def by_phone(tenant: Tenant, phone: Any) -> Subject:
    """The person with this phone number in the tenant; NotFound (contact_not_found) when the tenant holds nothing
    about the number (another tenant's contact included). Invalid for a value that is no phone number."""
    digits = recipients.phone_digits(phone, "phone")
    chat_id = f"{digits}@c.us"
    contact = db.session.scalar(select(Contact).where(Contact.tenant_id == tenant.id, Contact.chat_id == chat_id))
    if contact is None:
        contact = db.session.scalar(select(Contact).where(Contact.tenant_id == tenant.id, Contact.phone == digits))
    subject = _subject(tenant.id, digits, contact)
    if contact is None and not _known(tenant.id, list(subject.chat_ids)):
        raise NotFound(N_("The tenant holds no data about this number."), code="contact_not_found")
    return subject


def by_contact(tenant: Tenant, contact_id: Any) -> Subject:
    """The person of one of the tenant's contact rows (another tenant's: NotFound)."""
    from portal.services.contacts import get_contact_by_id

    contact = get_contact_by_id(tenant, contact_id)
    return _subject(tenant.id, contact.phone or phone_of(contact.chat_id), contact)
