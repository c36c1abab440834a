"""Deleting a session so that it converges: after a success nothing is left on either side, after a failure the
delete can simply be repeated.

Lock order. Every writer that touches a session's rows takes its locks in one order:

    advisory lock (5501, session) -> webhook_events rows -> webhook_deliveries, chats, messages rows -> session row

The event workers already do (`services.events.processing._claim`: the advisory lock, then the events FOR UPDATE,
and only while applying them the session row). A plain `DELETE FROM waha_sessions` did the opposite: it locked the
session row first and then, through the ON DELETE cascades, the events and deliveries a worker had claimed, and the
two deadlocked. Here the delete takes the advisory lock (waiting for a batch in flight on this session, and keeping
new batches off it), then unlinks or deletes the dependent rows explicitly, and deletes the session row last.
A deadlock or lock timeout that still happens (another path) is retried; if it keeps failing the caller gets a
503 `session_busy` and may repeat the delete.

Convergence. The row is first marked `desired_state = "deleting"` (committed), so recovery never re-creates on
WAHA a session the user is deleting; then WAHA's session is deleted (already gone is fine); then the rows.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy import delete, update
from sqlalchemy.exc import OperationalError

from portal.extensions import db
from portal.i18n import N_
from portal.models import Chat, Message, WahaSession, WebhookDelivery, WebhookEvent, utcnow
from portal.services.errors import ServiceError

log = logging.getLogger(__name__)

DELETING = "deleting"
ATTEMPTS = 5
_ADVISORY_CLASS = 5501  # the same key as event processing (services.events.processing)
_RETRYABLE = {"40P01", "55P03", "40001"}  # deadlock_detected, lock_not_available, serialization_failure


class SessionBusy(ServiceError):
    """The session's rows stayed locked by other work; nothing was half-deleted, the delete may be repeated."""

    status = 503
    code = "session_busy"


def _retryable(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE


def with_lock_retry(work: Callable[[], None], what: str) -> None:
    """Run `work` (one transaction, it commits) again after a deadlock or lock timeout; SessionBusy at the end."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            work()
            return
        except OperationalError as exc:
            db.session.rollback()
            if not _retryable(exc):
                raise
            log.warning("%s: %s (attempt %d of %d)", what, type(exc.orig).__name__, attempt, ATTEMPTS)
            if attempt == ATTEMPTS:
                raise SessionBusy(
                    N_("The session is busy processing events; try the delete again in a moment."), retry_after=1
                ) from exc
            time.sleep(random.uniform(0.02, 0.1) * attempt)


def mark_deleting(session_id: str) -> None:
    """Record that the session is being deleted (recovery leaves it alone from now on) and commit."""

    def work() -> None:
        _lock_timeout()
        db.session.execute(
            update(WahaSession)
            .where(WahaSession.id == session_id)
            .values(desired_state=DELETING)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()

    with_lock_retry(work, f"marking session {session_id} for deletion")


def delete_rows(session_id: str, before_commit: Callable[[], object]) -> list[str]:
    """Delete the session's row and its dependent rows in the lock order above; `before_commit` adds the audit
    row to the same transaction. Retried on deadlocks; SessionBusy when that does not help. Returns the storage
    keys of the deleted messages' files (to delete once committed: `media_files.delete_files`)."""
    from portal.services.media_files import session_keys

    keys: list[str] = []

    def work() -> None:
        _lock_timeout()
        if db.engine.dialect.name == "postgresql":
            # waits for a batch in flight on this session; new batches skip the session from now on
            db.session.execute(
                sa.text("SELECT pg_advisory_xact_lock(:cls, hashtext(:sid))"),
                {"cls": _ADVISORY_CLASS, "sid": session_id},
            )
        now = utcnow()
        # events are kept (the ledger of what WAHA sent); pending ones have nobody to go to any more
        db.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.session_id == session_id, WebhookEvent.status == "pending")
            .values(status="ignored", error="session deleted", processed_at=now)
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.session_id == session_id)
            .values(session_id=None)
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            delete(WebhookDelivery)
            .where(WebhookDelivery.session_id == session_id)
            .execution_options(synchronize_session=False)
        )
        keys[:] = session_keys(session_id)  # under the advisory lock: no batch adds a file after this
        # chats first (their notes go with them): deleting the messages would otherwise unlink each chat's last one
        db.session.execute(
            delete(Chat).where(Chat.session_id == session_id).execution_options(synchronize_session=False)
        )
        db.session.execute(
            delete(Message).where(Message.session_id == session_id).execution_options(synchronize_session=False)
        )
        row = db.session.get(WahaSession, session_id)
        if row is not None:
            db.session.delete(row)  # no child relationships: one DELETE, and the object keeps what it loaded
            db.session.flush()
        before_commit()
        db.session.commit()

    with_lock_retry(work, f"deleting session {session_id}")
    return keys


def _lock_timeout() -> None:
    if db.engine.dialect.name == "postgresql":
        # a row held by a long transaction elsewhere: give up after a while (retried) rather than hang
        db.session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
