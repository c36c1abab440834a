"""A short-lived per-process cache of authenticated API tokens, with revocation pushed to every process.

An API call with a token the process has seen in the last CACHE_SECONDS costs no database round trip and no
ORM objects: the cache keeps, by the sha256 of the secret, what the principal needs (the token's id, name,
scopes, expiry, and its tenant's columns). It is trusted only while it agrees with every other process:

* **Epoch.** Any change to a token or a tenant (a revocation, a deletion, a deactivation, new settings: every
  ORM flush that touches `api_tokens` or `tenants`, except a token's last use) sets a new random value under
  EPOCH_KEY in Redis once its transaction has committed, before the request that made it answers. Every
  cached entry carries the epoch it was read under; the API's one rate-limit round trip returns the current
  epoch (`api.ratelimit`), and an entry of another epoch is not used: the process drops its cache and reads
  the token again. So a revoked token is refused by every process from the moment its revocation returns.
* **Push.** The same change is published on CHANNEL; a listening thread in each process drops its entries at
  once, so memory does not hold a revoked token until its next use.
* Redis unreachable: the epoch cannot be checked, so the cache is not used (every call reads its token).
  A change committed while Redis was unreachable reaches the other processes when their entries expire
  (CACHE_SECONDS at most).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, make_transient_to_detached

from portal.models import ApiToken, Tenant, utcnow

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0
MAX_ENTRIES = 10000
EPOCH_KEY = "portal:tokens:epoch"
CHANNEL = "portal:tokens:changed"
_CHANGED = "portal_tokens_changed"
# A token's columns that the API itself writes on use: no reason to drop anyone's cache.
_USE_COLUMNS = frozenset({"last_used_at", "updated_at"})
_TENANT_COLUMNS = tuple(c.key for c in inspect(Tenant).column_attrs)


@dataclass
class Entry:
    """What a principal needs of a token and its tenant, as read under `epoch`."""

    token_id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    last_used_at: datetime | None
    tenant: dict[str, Any]
    epoch: str
    cached_at: float

    def tenant_row(self) -> Tenant:
        """A detached Tenant of this request alone (never shared between requests or threads)."""
        tenant = Tenant(**self.tenant)
        make_transient_to_detached(tenant)
        return tenant


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, Entry] = {}
        self.listener: threading.Thread | None = None
        self.pid = 0

    def after_fork(self) -> None:
        self.lock = threading.Lock()
        self.entries = {}
        self.listener = None
        self.pid = 0


_cache = _Cache()
os.register_at_fork(after_in_child=_cache.after_fork)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def lookup(secret_digest: str) -> Entry | None:
    """The cached entry for this secret, when it is fresh and the token has not expired."""
    entry = _cache.entries.get(secret_digest)
    if entry is None:
        return None
    if time.monotonic() - entry.cached_at > CACHE_SECONDS or (
        entry.expires_at is not None and entry.expires_at <= utcnow()
    ):
        drop(secret_digest)
        return None
    return entry


def remember(secret_digest: str, token: ApiToken, tenant: Tenant, epoch: str | None) -> None:
    """Keep a token just read from the database, under the epoch read before it (None: Redis unknown, skip)."""
    if epoch is None:
        return
    entry = Entry(
        token_id=token.id,
        name=token.name,
        prefix=token.prefix,
        scopes=tuple(token.scopes or ()),
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        tenant={key: getattr(tenant, key) for key in _TENANT_COLUMNS},
        epoch=epoch,
        cached_at=time.monotonic(),
    )
    with _cache.lock:
        if len(_cache.entries) >= MAX_ENTRIES:
            _cache.entries.clear()
        _cache.entries[secret_digest] = entry
    _ensure_listener()


def drop(secret_digest: str) -> None:
    with _cache.lock:
        _cache.entries.pop(secret_digest, None)


def clear() -> None:
    """Forget every cached token of this process."""
    with _cache.lock:
        _cache.entries.clear()


def size() -> int:
    return len(_cache.entries)


# ---- telling every process ------------------------------------------------------------------------------------


def announce_change() -> None:
    """A token or a tenant changed: a new epoch (every process stops trusting its entries) and a push to drop
    them. Called after the commit; never raises (without Redis the entries expire on their own)."""
    from portal.extensions import redis_store

    clear()
    try:
        pipe = redis_store.client.pipeline(transaction=False)
        pipe.set(EPOCH_KEY, uuid.uuid4().hex)
        pipe.publish(CHANNEL, b"*")
        pipe.execute()
    except Exception as exc:
        log.warning(
            "token cache: could not announce a token or tenant change (%s); other processes may use their "
            "cached copy for up to %.0f s",
            type(exc).__name__,
            CACHE_SECONDS,
        )


def _ensure_listener() -> None:
    from portal.extensions import redis_store

    if _cache.pid == os.getpid() and _cache.listener is not None and _cache.listener.is_alive():
        return
    if redis_store.embedded:
        return  # one process: the epoch check is all there is to it
    with _cache.lock:
        if _cache.pid == os.getpid() and _cache.listener is not None and _cache.listener.is_alive():
            return
        _cache.pid = os.getpid()
        _cache.listener = threading.Thread(
            target=_listen, args=(redis_store.client,), name="token-cache-listener", daemon=True
        )
        _cache.listener.start()


def _listen(client: Any) -> None:
    """Drop this process's entries whenever another process announces a change; reconnects after a failure."""
    while True:
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(CHANNEL)  # what was announced before is caught by the epoch check
            for message in pubsub.listen():
                if message and message.get("type") == "message":
                    clear()
        except Exception as exc:
            log.debug("token cache listener: %s; subscribing again", type(exc).__name__)
            clear()
            time.sleep(1.0)


# ---- noticing changes -----------------------------------------------------------------------------------------


def _changes_tokens(obj: Any) -> bool:
    if not isinstance(obj, (Tenant, ApiToken)):
        return False
    ignored = _USE_COLUMNS if isinstance(obj, ApiToken) else frozenset()
    state: Any = inspect(obj)
    return any(attr.history.has_changes() for attr in state.attrs if attr.key not in ignored)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, context: Any) -> None:
    if session.info.get(_CHANGED):
        return
    if any(isinstance(o, (Tenant, ApiToken)) for o in session.deleted) or any(
        _changes_tokens(o) for o in session.dirty
    ):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _bulk_statement(state: Any) -> None:
    # UPDATE or DELETE statements on the tables, bypassing the unit of work (tenant deletion, bulk edits).
    mapper = state.bind_mapper
    if (state.is_update or state.is_delete) and mapper is not None and mapper.class_ in (Tenant, ApiToken):
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        announce_change()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)
