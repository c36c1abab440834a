"""Sending a message through a session: paced, idempotent, recorded before WAHA is called.

A send writes its row (status PENDING, with the WhatsApp id we pre-generate and WAHA sends under) and commits
before WAHA is called, so a crash in between leaves a visible PENDING row rather than an unrecorded message,
and acks that arrive over the webhook find the row. Afterwards the row gets WAHA's id and the send time. A
WAHA failure that provably never reached WhatsApp marks it ERROR; any other leaves it PENDING with its outcome
unknown, for acks, a retry with the same Idempotency-Key or the reconcile job to settle (services.outbox).
Acks move the status forward later (events processing). The statements themselves live in `send_sql`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import Message, Tenant, utcnow
from portal.services import audit, contacts, idempotency, number_health, outbox, pacing, partitions, servers, upstream
from portal.services.audit import Actor
from portal.services.errors import Conflict, Invalid
from portal.services.inbox.upkeep import refresh_previews
from portal.services.messages.replies import reply_target
from portal.services.messages.send_sql import (
    _commit_keeping_loaded_rows,
    _execute_alone,
    _execute_here,
    _insert_with_audit,
    _new_row,
    _record_sent,
    _SendTarget,
    _session_for_send,
    _statements_commit_themselves,
)
from portal.services.messages.validation import (
    PORTAL_METADATA_NAMES,
    _clean_metadata,
    _clean_text,
    check_caption_text,
    clean_media,
    normalize_recipient,
)
from portal.services.quotas import Taken, check_upload, give_back, take_send
from portal.services.sessions import apply_status, get_session
from portal.services.waha_errors import map_waha_error
from portal.waha import errors as waha_errors
from portal.waha.breaker import ServerBreaker, Verdict
from portal.waha.ids import new_message_id


def _by_key(tenant_id: int, key: str) -> Message | None:
    stmt = select(Message).where(Message.tenant_id == tenant_id, Message.idempotency_key == key)
    if db.session.get_bind().dialect.name == "postgresql":
        # messages is partitioned by month: the key table says which month holds the row, so one partition is read
        keys = partitions.IDEMPOTENCY_KEYS
        stmt = stmt.where(
            Message.created_at
            == select(keys.c.created_at)
            .where(keys.c.tenant_id == tenant_id, keys.c.idempotency_key == key)
            .scalar_subquery()
        )
    return db.session.scalar(stmt)


def key_used_by_a_send(tenant_id: int, key: str) -> bool:
    """Whether a message sent now (not scheduled) already carries this Idempotency-Key."""
    return _by_key(tenant_id, key) is not None


def _same_request(
    message: Message,
    session_id: str,
    chat_id: str,
    body: str | None,
    media: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
    reply_to_id: int | None = None,
) -> Message:
    """The stored message if it answers the same request (the same session, chat, text, file, metadata and quoted
    message, and a send, not a forward); Conflict when the key was used for another one."""
    stored = message.extra or {}
    own = {name: value for name, value in stored.items() if name not in PORTAL_METADATA_NAMES}
    if (
        (message.session_id, message.chat_id, message.body, message.media) != (session_id, chat_id, body, media)
        or "forwarded_from" in stored
        or own != (extra or {})
        or message.reply_to_id != reply_to_id
    ):
        raise Conflict(
            N_("This Idempotency-Key was already used for a different message."), code="idempotency_key_reused"
        )
    return message


def _send_to_waha(
    client: Any,
    name: str,
    chat_id: str,
    text: str | None,
    kind: str | None,
    file: dict | None,
    caption: str | None,
    reply_to: str | None,
    message_id: str,
) -> Any:
    if kind is None:
        return client.send_text(name, chat_id, text or "", message_id=message_id, reply_to=reply_to)
    if kind == "image":
        return client.send_image(name, chat_id, file, caption=caption, message_id=message_id, reply_to=reply_to)
    if kind == "video":
        return client.send_video(name, chat_id, file, caption=caption, message_id=message_id, reply_to=reply_to)
    if kind == "audio":
        return client.send_voice(name, chat_id, file, message_id=message_id, reply_to=reply_to)
    return client.send_file(name, chat_id, file, caption=caption, message_id=message_id, reply_to=reply_to)


def _hooked(hook: Callable[[], None], call: Callable[[str], Any], pre_id: str) -> Any:
    """`call(pre_id)` right after `hook()`."""
    hook()
    return call(pre_id)


def _answered(
    breaker: ServerBreaker, verdict: Verdict, asked_at: float, call: Callable[[str], Any], pre_id: str
) -> Any:
    """`call(pre_id)` with the breaker's verdict asked ahead (services.quotas.take_send): no second look at Redis."""
    with breaker.answered(verdict, asked_at):
        return call(pre_id)


def _not_called(exc: waha_errors.WahaUnavailable, pre_id: str) -> Any:
    """The send's WAHA call, not made: WAHA did not answer the check just before it, so the send fails as one
    that never left the portal (a retry with the same Idempotency-Key sends it)."""
    exc.never_sent = True
    raise exc


def _refuse_new_contact_while_limited(session: _SendTarget) -> None:
    """Conflict "new_contact_limited" for a first message to a number while WhatsApp limits the session's number
    (a reach-out timelock or the new-chat cap: services.number_health); replies to existing chats go out."""
    until = session.new_contacts_blocked_until
    if until is None or session.chat_known:
        return
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    if until <= utcnow():
        return
    raise Conflict(
        N_f(
            "WhatsApp does not take messages to new contacts from this number until %(isoformat)s "
            "(a reach-out timelock or the new-chat cap). Replies to existing chats still go out.",
            isoformat=until.isoformat(),
        ),
        code="new_contact_limited",
        details={"until": until.isoformat()},
    )


def send_message(
    tenant: Tenant,
    session_id: Any,
    actor: Actor,
    *,
    to: str,
    text: str | None = None,
    media: dict[str, Any] | None = None,
    reply_to: int | str | None = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    source: str = "api",
    ignore_opt_out: bool = False,
    paced: bool = True,
    before_call: Callable[[], None] | None = None,
    key_is_new: bool = False,
) -> Message:
    """Send a text or a media message through the session and return its row.

    A recipient on the tenant's opt-out list is refused (Conflict 409 "recipient_opted_out") unless
    `ignore_opt_out` (the door checks who may pass it); the list is read in the session lookup, no extra query.

    Checks, in order: the input (recipient normalised with `phonenumbers`, text <= 4096 characters, media kind,
    type and size), a repeated Idempotency-Key (returns the first message and never sends twice, except that a
    send that provably never reached WhatsApp is tried again, and a text whose outcome is unknown is sent again
    under the same WhatsApp id, which WAHA deduplicates: see services.outbox), the session is WORKING (else
    Conflict "session_not_ready" with details.status), the session's pacing (RateLimited with retry_after).
    WAHA failures raise the mapped ServiceError (Upstream 503 when WAHA is down or did not answer) with
    details.outcome "unsent" (row ERROR) or "unknown" (row PENDING). Audited as "message.send" without the
    message text. `reply_to` quotes a message of the same chat (its portal id, or its WhatsApp id): Invalid on
    "reply_to" otherwise; the row keeps it as `reply_to_id`. `paced=False` skips the pacing check: the send
    queue's dispatcher took the slot itself, in its lane's way; `before_call` runs right before the call to WAHA,
    once everything before it is done (the queue waits there for its campaign slot and notes the time, so the
    gap between two messages is the gap between their calls); `key_is_new` skips looking the key up when the
    caller knows no send used it yet (the unique key still catches a twin).
    """
    try:
        chat_id, bad_recipient = normalize_recipient(to), None
    except Invalid as exc:
        chat_id, bad_recipient = "", exc
    session = _session_for_send(tenant, session_id, chat_id)  # an unknown session is the first error
    if bad_recipient is not None:
        raise bad_recipient
    text = _clean_text(text)
    kind = file = stored_media = caption = None
    if media is not None:
        kind, file, stored_media, caption = clean_media(media)
        if media.get("data") is not None:
            check_upload(tenant)  # uploads stop while the tenant's stored media is over its quota
        if caption is None and text is not None:
            check_caption_text(kind, text)
            caption = stored_media["caption"] = text
    elif text is None:
        raise Invalid.field("text", N_("Give a text or a media file to send."))
    quoted = reply_target(tenant, session.id, chat_id, reply_to) if reply_to is not None else None
    extra = _clean_metadata(metadata)
    body = caption if kind else text
    key = idempotency.clean_key(idempotency_key)

    tenant_id = tenant.id
    again: tuple[Message, str] | None = None  # the stored row to send again, and the state to claim it from
    if key and not key_is_new:
        existing = _by_key(tenant_id, key)
        if existing is None and idempotency.used(tenant_id, idempotency.SCHEDULE_SCOPE, key):
            raise idempotency.reused_elsewhere()  # the key scheduled a message: it cannot also send one now
        if existing is not None:
            existing = _same_request(
                existing, session.id, chat_id, body, stored_media, extra, quoted.id if quoted is not None else None
            )
            again_from = outbox.another_try(existing)
            if again_from is None:
                if outbox.unsettled(existing) and existing.media is not None:
                    # a media send that may have gone out: find out instead of sending it twice
                    outbox.look_up(servers.client_for(session.server), session.external_name, existing)
                return existing
            again = (existing, again_from)
    if session.opted_out and not ignore_opt_out:
        raise Conflict(
            N_("The recipient opted out of your messages; an owner or admin may send anyway with ignoreOptOut."),
            code="recipient_opted_out",
            details={"chatId": chat_id},
        )
    if session.status != "WORKING":
        raise Conflict(
            N_f("The session is %(status)s; it must be WORKING to send.", status=session.status),
            code="session_not_ready",
            details={"status": session.status, "expected": ["WORKING"]},
        )
    _refuse_new_contact_while_limited(session)
    # asks WAHA only before a first send to a number; a WAHA that is down fails the send below, uncalled
    unanswered = contacts.ensure_on_whatsapp(tenant.id, session, chat_id)
    client, external, session_key = servers.client_for(session.server), session.external_name, session.id
    quoted_id = quoted.waha_message_id if quoted is not None else None
    call = functools.partial(_send_to_waha, client, external, chat_id, text, kind, file, caption, quoted_id)
    taken = None
    if again is None or again[1] == "unsent":  # a send again after "unsent" gave its unit back
        # The session's pacing slot, a unit of the tenant's message quota and the WAHA server's breaker, in one
        # Redis round trip. The breaker's verdict serves the call (ServerBreaker.answered) unless the caller waits
        # for its moment in between (`before_call`): the call asks the breaker itself then.
        breaker = client.breaker.gate() if unanswered is None and before_call is None else None
        gates = take_send(tenant, session.id, paced=paced, breaker=breaker)
        taken = gates.taken
        if gates.verdict is not None:
            call = functools.partial(_answered, client.breaker, gates.verdict, time.monotonic(), call)
    elif paced:
        pacing.acquire(session.id, tenant.send_rate_per_minute)
    if unanswered is not None:
        call = functools.partial(_not_called, unanswered)
    if before_call is not None:
        call = functools.partial(_hooked, before_call, call)
    if again is not None:
        return _send_again(tenant, actor, *again, call, taken)
    # WAHA sends under this id and dedupes on it, so the client's retries never make a second message; the
    # row carries the id WAHA will report (true_<chat>_<id>) so early acks find it.
    pre_id = new_message_id()
    predicted_id = f"true_{chat_id}_{pre_id}"
    message = _new_row(
        tenant_id=tenant_id,
        session_id=session_key,
        direction="out",
        source=source,
        waha_message_id=predicted_id,
        chat_id=chat_id,
        from_me=True,
        body=body,
        media=stored_media,
        status="PENDING",
        idempotency_key=key,
        extra=extra,
        send_state="sending",
        reply_to_id=quoted.id if quoted is not None else None,
    )
    # The audit event records the attempt (who sent what kind to whom); the outcome lives on the row.
    details: dict[str, Any] = {"session_id": session_key, "chat_id": chat_id, "kind": kind or "text"}
    one_statement_each = _statements_commit_themselves()
    try:
        _insert_with_audit(message, actor, details)
        if not one_statement_each:
            _commit_keeping_loaded_rows()
    except IntegrityError:
        # A concurrent request with the same key won the race; its message is the answer.
        db.session.rollback()
        give_back(taken)
        existing = _by_key(tenant_id, key) if key else None
        if existing is None:
            raise
        return _same_request(
            existing, session_key, chat_id, body, stored_media, extra, quoted.id if quoted is not None else None
        )
    except Exception:
        give_back(taken)  # the row was never written: nothing went to WAHA
        raise
    if session.opted_out:  # the recipient opted out and an owner or admin sent anyway: on the record
        audit.record(tenant_id, "opt_out.override", actor, target_type="message", target_id=message.id, details=details)
        _commit_keeping_loaded_rows()
    return _attempt(tenant, actor, message, details, call, pre_id, one_statement_each, taken)


def _send_again(
    tenant: Tenant,
    actor: Actor,
    message: Message,
    again_from: str,
    call: Callable[[str], Any],
    taken: Taken | None = None,
) -> Message:
    """Call WAHA again for a stored send whose first call provably never reached WhatsApp (`unsent`), or whose
    outcome is unknown (a text, sent again under its pre-generated id, which WAHA deduplicates).

    The row is claimed first, so two retries racing with one key make one call; the loser answers the row.
    """
    pre_id = outbox.pre_generated_id(message)
    if pre_id is None:  # outbox.another_try offers a second call only to rows that carry the id
        raise RuntimeError(f"message {message.id} has no pre-generated id to send again under")
    if _statements_commit_themselves():
        _commit_keeping_loaded_rows()  # claim and audit belong together: back to a real transaction
    if not outbox.claim(message, again_from):
        db.session.commit()
        give_back(taken)
        return message
    details: dict[str, Any] = {
        "session_id": message.session_id,
        "chat_id": message.chat_id,
        "kind": (message.media or {}).get("kind", "text"),
        "message_id": message.id,
        "previous": again_from,
    }
    audit.record(tenant.id, "message.send_retry", actor, target_type="message", target_id=message.id, details=details)
    _commit_keeping_loaded_rows()
    return _attempt(tenant, actor, message, details, call, pre_id, False, taken)


def _attempt(
    tenant: Tenant,
    actor: Actor,
    message: Message,
    details: dict[str, Any],
    call: Callable[[str], Any],
    pre_id: str,
    one_statement_each: bool,
    taken: Taken | None = None,
) -> Message:
    """Call WAHA for the stored, committed send row and record what came of it.

    A failure that provably never reached WhatsApp marks the row ERROR (send_state "unsent": a retry with the
    same key sends it); any other failure leaves it PENDING with send_state "unknown" for acks, a retry or the
    reconcile job to settle. Either way the caller gets the mapped ServiceError, with `outcome` and `messageId`
    in its details; the tenant-facing texts never carry WAHA's address (services.upstream).
    """
    predicted_id = f"true_{message.chat_id}_{pre_id}"
    try:
        result = call(pre_id)
    except waha_errors.WahaError as exc:
        if one_statement_each:
            _commit_keeping_loaded_rows()  # the failure's writes belong together: back to a real transaction
        outcome = upstream.send_outcome(exc)
        upstream.log_failure("send failed", exc, message=message.id, outcome=outcome)
        if outcome == upstream.UNSENT:
            message.status = "ERROR"
            message.error = f"Not sent: {upstream.describe(exc)}"
            message.failed_at = utcnow()
            give_back(taken)  # never reached WhatsApp: the unit goes back to the quota
            db.session.flush()
            refresh_previews([message])  # the chat's tick shows the failure
        message.send_state = outcome
        session = get_session(tenant, message.session_id)
        if isinstance(exc, waha_errors.WahaSessionNotReady) and exc.session_status:
            apply_status(session, exc.session_status, source="send")
        audit.record(
            tenant.id,
            "message.send_failed" if outcome == upstream.UNSENT else "message.send_unconfirmed",
            actor,
            target_type="message",
            target_id=message.id,
            details={**details, "error": type(exc).__name__, "outcome": outcome},
        )
        db.session.commit()
        if isinstance(exc, waha_errors.WahaNewContactLimited):
            number_health.schedule_check(session.id)  # WhatsApp limits the number: read its limits now
        error = map_waha_error(exc, session)
        error.details = {**error.details, "outcome": outcome, "messageId": message.id}
        raise error from exc

    _record_sent(message, predicted_id, result, _execute_here if one_statement_each else _execute_alone)
    return message
