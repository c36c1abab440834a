"""Erasing a person from a tenant (the right to erasure): their messages and stored files, inbox chats with notes,
send queue entries, campaign recipient data, opt-out, webhook events and forwarded copies naming them, and the
contact row; WAHA is asked to delete the chats too. The audit log keeps that an erase happened (a masked number,
a keyed hash of it, the counts), never the content.

Messages may still be arriving while the erase runs. Event processing writes a session's messages, chats and
contacts while holding the session's advisory lock (services.events.processing, key 5501); the erase takes that
lock for every session of the tenant (in one order, so two erases never deadlock) before it deletes, so a batch
in flight finishes first and no batch of the tenant starts until the erase commits. Events of the person still
pending at that moment are deleted with the rest. Paths that write without that lock (a send under way, the send
queue) are caught by a second sweep after the first commit. What arrives after the erase starts a new record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, select, update

from portal.extensions import db
from portal.models import (
    AuditEvent,
    Campaign,
    CampaignRecipient,
    Chat,
    ChatNote,
    Contact,
    IdempotencyRecord,
    Message,
    OptOut,
    QueuedSend,
    Tenant,
    WahaSession,
    WebhookDelivery,
    WebhookEvent,
    rowcount,
)
from portal.services import audit
from portal.services.audit import Actor
from portal.services.dashboard import forget_today
from portal.services.privacy.subject import Subject
from portal.services.sessions.deletion import _lock_timeout, with_lock_retry
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

_ADVISORY_CLASS = 5501  # event processing of a session (services.events.processing)
ERASED_PREFIX = "erased:"
COUNTED = (
    "messages",
    "files",
    "chats",
    "notes",
    "queue",
    "recipients",
    "opt_outs",
    "events",
    "deliveries",
    "contacts",
    "audit_redacted",
    "idempotency",
)


@dataclass
class EraseReport:
    """What an erase removed, and what WAHA said to the chat deletes."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    waha_deleted: int = 0
    waha_failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.counts, "waha_chats_deleted": self.waha_deleted, "waha_chats_failed": self.waha_failed}


def _lock_sessions(tenant_id: int) -> None:
    """Wait for the event batches in flight on the tenant's sessions and keep new ones off until the commit."""
    if db.engine.dialect.name != "postgresql":
        return
    ids = sorted(db.session.scalars(select(WahaSession.id).where(WahaSession.tenant_id == tenant_id)))
    for session_id in ids:
        db.session.execute(
            sa.text("SELECT pg_advisory_xact_lock(:cls, hashtext(:sid))"), {"cls": _ADVISORY_CLASS, "sid": session_id}
        )


def _mentions(column: Any, chat_ids: tuple[str, ...]) -> Any:
    """Rows whose JSON names one of the chat ids: `<number>@...` whatever the suffix, or the number alone as a
    whole value (`"491701234567"`, `"+491701234567"`), never a longer number that starts with it."""
    text = sa.cast(column, sa.Text)
    found = []
    for chat_id in chat_ids:
        number = chat_id.split("@", 1)[0]
        for form in (f"{number}@", f'"{number}"', f'"+{number}"'):
            found.append(text.contains(form, autoescape=True))
    return sa.or_(*found)


def _sweep(subject: Subject, *, keep_opt_out: bool, keys: list[str], targets: set[tuple[str, str]]) -> dict[str, int]:
    """Delete (or anonymise) every row naming the person, in one transaction the caller commits; the counts."""
    tenant_id, ids = subject.tenant_id, subject.chat_ids
    counts: dict[str, int] = {}
    targets.update(
        db.session.execute(
            select(Chat.session_id, Chat.chat_id).where(Chat.tenant_id == tenant_id, Chat.chat_id.in_(ids))
        ).tuples()
    )
    # the raw events first, then their forwarded copies (the workers' order: events, then deliveries); their
    # payloads carry the texts
    event_match = sa.or_(_mentions(WebhookEvent.payload, ids), _mentions(WebhookEvent.raw, ids))
    counts["events"] = rowcount(
        db.session.execute(
            delete(WebhookEvent)
            .where(WebhookEvent.tenant_id == tenant_id, event_match)
            .execution_options(synchronize_session=False)
        )
    )
    counts["deliveries"] = rowcount(
        db.session.execute(
            delete(WebhookDelivery)
            .where(WebhookDelivery.tenant_id == tenant_id, _mentions(WebhookDelivery.payload, ids))
            .execution_options(synchronize_session=False)
        )
    )
    chat_rows = select(Chat.id).where(Chat.tenant_id == tenant_id, Chat.chat_id.in_(ids))
    counts["notes"] = rowcount(
        db.session.execute(
            delete(ChatNote).where(ChatNote.chat_id.in_(chat_rows)).execution_options(synchronize_session=False)
        )
    )
    # chats before messages: deleting the messages would otherwise unlink each chat's last one first
    counts["chats"] = rowcount(
        db.session.execute(
            delete(Chat)
            .where(Chat.tenant_id == tenant_id, Chat.chat_id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    )
    mine = (Message.tenant_id == tenant_id, Message.chat_id.in_(ids))
    keys += [
        str(media["key"])
        for media in db.session.scalars(select(Message.media).where(*mine, Message.media.is_not(None)))
        if isinstance(media, dict) and media.get("key")
    ]
    counts["messages"] = rowcount(
        db.session.execute(delete(Message).where(*mine).execution_options(synchronize_session=False))
    )
    counts["queue"] = rowcount(
        db.session.execute(
            delete(QueuedSend)
            .where(QueuedSend.tenant_id == tenant_id, QueuedSend.chat_id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    )
    # campaign recipients keep their place in the campaign's counts, without the number or the variables
    campaign_ids = select(Campaign.id).where(Campaign.tenant_id == tenant_id)
    counts["recipients"] = rowcount(
        db.session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.campaign_id.in_(campaign_ids), CampaignRecipient.chat_id.in_(ids))
            .values(
                chat_id=sa.literal(ERASED_PREFIX) + sa.cast(CampaignRecipient.id, sa.String),
                values={},
                state=sa.case(
                    (CampaignRecipient.state.in_(("pending", "queued")), sa.literal("skipped")),
                    else_=CampaignRecipient.state,
                ),
                reason=sa.case(
                    (CampaignRecipient.state.in_(("pending", "queued")), sa.literal("erased")),
                    else_=CampaignRecipient.reason,
                ),
            )
            .execution_options(synchronize_session=False)
        )
    )
    counts["opt_outs"] = 0
    if not keep_opt_out:
        counts["opt_outs"] = rowcount(
            db.session.execute(
                delete(OptOut)
                .where(OptOut.tenant_id == tenant_id, OptOut.chat_id.in_(ids))
                .execution_options(synchronize_session=False)
            )
        )
    # stored answers replayed for an Idempotency-Key (a send's answer names the chat and the text)
    counts["idempotency"] = rowcount(
        db.session.execute(
            delete(IdempotencyRecord)
            .where(IdempotencyRecord.tenant_id == tenant_id, _mentions(IdempotencyRecord.response, ids))
            .execution_options(synchronize_session=False)
        )
    )
    # earlier audit entries that name the number (a contact's tags, a send) keep their action, not the number
    counts["audit_redacted"] = rowcount(
        db.session.execute(
            update(AuditEvent)
            .where(AuditEvent.tenant_id == tenant_id, _mentions(AuditEvent.details, ids))
            .values(details={"redacted": "the person was erased"})
            .execution_options(synchronize_session=False)
        )
    )
    keys += [
        str(k)
        for k in db.session.scalars(
            select(Contact.avatar_key).where(
                Contact.tenant_id == tenant_id, Contact.chat_id.in_(ids), Contact.avatar_key.is_not(None)
            )
        )
    ]
    counts["contacts"] = rowcount(
        db.session.execute(
            delete(Contact)
            .where(Contact.tenant_id == tenant_id, sa.or_(Contact.chat_id.in_(ids), Contact.lid.in_(ids)))
            .execution_options(synchronize_session=False)
        )
    )
    return counts


def _delete_on_waha(tenant_id: int, targets: set[tuple[str, str]], report: EraseReport) -> None:
    from portal.services.servers import client_for

    sessions = {
        s.id: s
        for s in db.session.scalars(
            select(WahaSession).where(
                WahaSession.tenant_id == tenant_id, WahaSession.id.in_({sid for sid, _ in targets})
            )
        )
    }
    for session_id, chat_id in sorted(targets):
        session = sessions.get(session_id)
        if session is None:
            continue
        try:
            client_for(session.server).delete_chat(session.external_name, chat_id)
        except waha_errors.WahaNotFound:
            report.waha_deleted += 1  # gone already (or the session is): nothing of it is left on WAHA
        except waha_errors.WahaError as exc:
            log.warning("erase: WAHA did not delete chat of session %s: %s", session_id, type(exc).__name__)
            report.waha_failed += 1
        else:
            report.waha_deleted += 1


def erase_contact(tenant: Tenant, actor: Actor, subject: Subject, *, keep_opt_out: bool = False) -> EraseReport:
    """Erase the person from the tenant (see the module's notes); audited as contact.erase with a masked number,
    its keyed hash and the counts. `keep_opt_out` keeps the number on the opt-out list (so that no campaign ever
    writes to them again), which the person may have asked for."""
    from portal.services.events.processing import _sqlite_lock
    from portal.services.media_files import delete_files

    report = EraseReport()
    keys: list[str] = []
    targets: set[tuple[str, str]] = set()

    def work() -> None:
        _lock_timeout()
        _lock_sessions(tenant.id)
        found = _sweep(subject, keep_opt_out=keep_opt_out, keys=keys, targets=targets)
        db.session.commit()
        for name, count in found.items():
            report.counts[name] += count

    sqlite = db.engine.dialect.name == "sqlite"
    for _pass in range(2):  # the second pass catches rows written meanwhile by paths without the lock (sends)
        if sqlite:
            with _sqlite_lock:  # the in-process event drain of the embedded mode
                with_lock_retry(work, "erasing a contact")
        else:
            with_lock_retry(work, "erasing a contact")
    report.counts["files"] = delete_files(dict.fromkeys(keys))
    forget_today(tenant.id)  # the day's message counts may have included the person's
    _delete_on_waha(tenant.id, targets, report)
    audit.record(
        tenant.id,
        "contact.erase",
        actor,
        target_type="contact",
        target_id=subject.digest,
        details={"phone": subject.masked, "opt_out_kept": keep_opt_out, **report.as_dict()},
        commit=True,
    )
    return report
