"""A person's data as one ZIP (a data subject's access request): `contact.json` (the contact row, its opt-out
state, its campaign recipient rows and send queue entries, its inbox chats with their notes), `messages.json`
(every message to or from them, with `file` naming the stored file in `media/`), the stored files themselves,
and `manifest.json` (what is inside and what could not be copied)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import (
    Campaign,
    CampaignRecipient,
    Chat,
    ChatNote,
    Message,
    OptOut,
    QueuedSend,
    Tenant,
    WahaSession,
    utcnow,
)
from portal.services import audit
from portal.services.audit import Actor
from portal.services.privacy.archive import Archive, file_name, row
from portal.services.privacy.subject import Subject

MESSAGES_PAGE = 500


def _session_names(tenant_id: int) -> dict[str, str]:
    rows = db.session.execute(select(WahaSession.id, WahaSession.name).where(WahaSession.tenant_id == tenant_id))
    return dict(rows.tuples().all())


def _messages(subject: Subject, media: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    """The person's messages, oldest first, read in pages (a long history never loads whole)."""
    names = _session_names(subject.tenant_id)
    after = 0
    while True:
        page = list(
            db.session.scalars(
                select(Message)
                .where(
                    Message.tenant_id == subject.tenant_id,
                    Message.chat_id.in_(subject.chat_ids),
                    Message.id > after,
                )
                .order_by(Message.id)
                .limit(MESSAGES_PAGE)
            )
        )
        for message in page:
            item = row(message, skip=("idempotency_key",))
            item["session"] = names.get(message.session_id)
            key = message.media.get("key") if isinstance(message.media, dict) else None
            if key:
                item["file"] = f"media/{message.id}-{file_name(str(key), 'file')}"
                media.append((item["file"], str(key)))
            yield item
        if len(page) < MESSAGES_PAGE:
            return
        after = page[-1].id
        for message in page:
            db.session.expunge(message)  # a long history is read page by page, not kept


def count_messages(subject: Subject) -> int:
    """How many messages to or from the person the tenant holds."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.tenant_id == subject.tenant_id, Message.chat_id.in_(subject.chat_ids))
        )
        or 0
    )


def contact_document(subject: Subject) -> dict[str, Any]:
    """Everything but the messages: the contact, opt-out, campaign recipients, queue entries, chats and notes."""
    tenant_id, ids = subject.tenant_id, subject.chat_ids
    sessions = _session_names(tenant_id)
    chats = []
    for chat in db.session.scalars(
        select(Chat).where(Chat.tenant_id == tenant_id, Chat.chat_id.in_(ids)).order_by(Chat.id)
    ):
        notes = db.session.scalars(select(ChatNote).where(ChatNote.chat_id == chat.id).order_by(ChatNote.id))
        chats.append({**row(chat), "session": sessions.get(chat.session_id), "notes": [row(n) for n in notes]})
    opt_out = db.session.scalar(select(OptOut).where(OptOut.tenant_id == tenant_id, OptOut.chat_id.in_(ids)))
    recipients = db.session.execute(
        select(CampaignRecipient, Campaign.name)
        .join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
        .where(Campaign.tenant_id == tenant_id, CampaignRecipient.chat_id.in_(ids))
        .order_by(CampaignRecipient.id)
    ).all()
    queued = db.session.scalars(
        select(QueuedSend).where(QueuedSend.tenant_id == tenant_id, QueuedSend.chat_id.in_(ids)).order_by(QueuedSend.id)
    )
    return {
        "phone": f"+{subject.phone}" if subject.phone else None,
        "chatIds": list(ids),
        "contact": row(subject.contact) if subject.contact is not None else None,
        "optOut": row(opt_out) if opt_out is not None else None,
        "campaignRecipients": [{**row(r), "campaign": name} for r, name in recipients],
        "sendQueue": [row(q, skip=("created_by_id",)) for q in queued],
        "chats": chats,
    }


def export_contact(tenant: Tenant, actor: Actor, subject: Subject) -> str:
    """Build the person's ZIP in a temporary file and return its path (the caller streams and removes it:
    `archive.stream_file`). Audited as contact.export (masked number and counts, not the content)."""
    archive = Archive(prefix="contact-export-")
    try:
        document = contact_document(subject)
        archive.json("contact.json", document)
        media: list[tuple[str, str]] = []
        count = archive.json_list("messages.json", _messages(subject, media))
        for name, key in media:
            archive.stored_file(name, key)
        if subject.contact is not None and subject.contact.avatar_key:
            archive.stored_file(
                f"media/avatar-{file_name(subject.contact.avatar_key, 'picture')}", subject.contact.avatar_key
            )
        counts = {"messages": count, "files": archive.files, "chats": len(document["chats"])}
        archive.json(
            "manifest.json",
            {
                "exportedAt": utcnow(),
                "tenant": tenant.slug,
                "subject": subject.label,
                "counts": counts,
                "missingFiles": len(archive.missing),
                "contents": {
                    "contact.json": "the contact, opt-out state, campaign recipient rows, send queue entries, chats "
                    "and their notes",
                    "messages.json": "every message to or from the person, oldest first; `file` names its file",
                    "media/": "the stored files of those messages (and the contact's picture)",
                },
            },
        )
        path = archive.close()
    except BaseException:
        archive.discard()
        raise
    audit.record(
        tenant.id,
        "contact.export",
        actor,
        target_type="contact",
        target_id=subject.digest,
        details={"phone": subject.masked, **counts},
        commit=True,
    )
    return path
