"""Idempotency keys: the first answer to a keyed request is remembered and replayed for repeats.

A key is scoped to a tenant and to an operation ("session.create", ...), so the same key used for two different
operations never collides. The request is reduced to a fingerprint: the same key with a different request is a
client bug and is refused with 409 `idempotency_key_reused` instead of silently replaying the wrong answer.
Records are written in the caller's transaction, next to the row they point at, so both exist or neither does.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import IdempotencyRecord, rowcount, utcnow
from portal.services.errors import Conflict, Invalid

MAX_KEY_LENGTH = 200
# Long enough for any client retry loop; the maintenance job prunes older records.
RETENTION = timedelta(hours=24)


# The keys the portal sends messages under itself (the send queue's items, opt-out confirmations), in the same
# space as clients' keys: a client's key may not start like one, or it would answer for (or block) the portal's send.
RESERVED_PREFIXES = ("queue-", "opt-out-confirm-")


def is_reserved(key: str | None) -> bool:
    """Whether `key` (as sent, before trimming) has the form of a key the portal uses itself."""
    return key is not None and key.strip().lower().startswith(RESERVED_PREFIXES)


def refuse_reserved(key: str | None) -> str | None:
    """`key` as a client sent it; Invalid when it has the form of one of the portal's own keys."""
    if is_reserved(key):
        raise Invalid.field(
            "Idempotency-Key",
            N_f(
                "Keys starting with %(prefixes)s are the portal's own; use another.",
                prefixes=", ".join(RESERVED_PREFIXES),
            ),
        )
    return key


def clean_key(key: str | None) -> str | None:
    """The key as sent (trimmed), None when absent; Invalid when it is too long or not printable ASCII."""
    if key is None:
        return None
    key = key.strip()
    if not key:
        return None
    if len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise Invalid.field(
            "Idempotency-Key",
            N_f(
                "Idempotency-Key must be 1-%(MAX_KEY_LENGTH)s printable ASCII characters.",
                MAX_KEY_LENGTH=MAX_KEY_LENGTH,
            ),
        )
    return key


def fingerprint(request: Any) -> str:
    """sha256 of the request's canonical JSON (sorted keys), the thing a repeat must match."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stored_key(scope: str, key: str) -> str:
    return f"{scope}:{key}"


def lookup(tenant_id: int, scope: str, key: str, request_fingerprint: str) -> IdempotencyRecord | None:
    """The record of an earlier request with this key, or None; Conflict when that request was different."""
    record = db.session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == _stored_key(scope, key)
        )
    )
    if record is not None and record.fingerprint != request_fingerprint:
        raise Conflict(
            N_("This Idempotency-Key was already used for a different request."), code="idempotency_key_reused"
        )
    return record


# The scope under which scheduled sends keep their keys (services.outreach.scheduled); a send made now keeps its key
# on its message row. One key names one request of either kind: each checks the other's record.
SCHEDULE_SCOPE = "message.schedule"


def reused_elsewhere() -> Conflict:
    """The refusal of a key that an earlier request of the other kind (a send now, or a scheduled one) used."""
    return Conflict(N_("This Idempotency-Key was already used for a different request."), code="idempotency_key_reused")


def used(tenant_id: int, scope: str, key: str) -> bool:
    """Whether a request under `scope` already used this key (whatever its body)."""
    return (
        db.session.scalar(
            select(IdempotencyRecord.id).where(
                IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == _stored_key(scope, key)
            )
        )
        is not None
    )


def remember(
    tenant_id: int,
    scope: str,
    key: str,
    request_fingerprint: str,
    response: dict[str, Any],
    status_code: int | None = None,
) -> IdempotencyRecord:
    """Add the record to the caller's transaction (flushed with it; the unique key catches a concurrent twin)."""
    record = IdempotencyRecord(
        tenant_id=tenant_id,
        key=_stored_key(scope, key),
        fingerprint=request_fingerprint,
        status_code=status_code,
        response=response,
    )
    db.session.add(record)
    return record


def purge(older_than: datetime | None = None) -> int:
    """Delete records older than `older_than` (default: RETENTION ago); returns how many went. Commits."""
    cutoff = older_than or utcnow() - RETENTION
    result = db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    db.session.commit()
    return max(rowcount(result), 0)
