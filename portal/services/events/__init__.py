"""Events from WAHA: durable ingest, batch processing, the sweeper (inbound media: `services.media`).

Ingest (the webhook view calls `ingest`): the per-session HMAC is checked over the raw bytes, every event of the
request goes into `webhook_events` with one statement (a repeated event id is a no-op) and one commit, then one
"drain" signal is sent to Redis. If Redis is down the rows simply stay pending and the sweeper queues them.

Processing (`drain`): a job takes pending events in batches. On PostgreSQL a batch first takes an advisory lock
per session (so two workers never work on the same session and each session's events apply in arrival order),
then claims that session's pending rows with FOR UPDATE SKIP LOCKED. A worker that dies mid-batch rolls back with
its connection: its rows are pending again and the sweeper queues them. Every write of a batch (messages, session
status, the events' own status, the forwarding ledger) commits together, so an event is applied exactly once.

Modules: `intake` (key cache, checks, `ingest`), `writer` (storing a request's events: the group-commit writer
with its own connection), `signal` (the drain signal and its thread), `processing` (claim and batch processing),
`handlers` (the table from event name to handler), `admin` (sweep, replay, counts). This package re-exports
their public names, and the private ones tests and benchmarks use.
"""

from __future__ import annotations

from portal.services.events.admin import count_by_status, failed_events, replay_event, sweep
from portal.services.events.handlers import HANDLERS, WAHA
from portal.services.events.intake import (
    CLOCK_SKEW_SECONDS,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    REPLAY_WINDOW_SECONDS,
    UNKNOWN_SESSION_WAITS,
    IngestResult,
    _Incoming,
    forget_session_key,
    ingest,
    parse_events,
    signature_ok,
)
from portal.services.events.processing import (
    BATCH_SIZE,
    DRAIN_BUDGET_SECONDS,
    MAX_ATTEMPTS,
    DrainResult,
    _apply_all,
    _claim,
    drain,
    preassign_ids,
    process_batch,
)
from portal.services.events.signal import (
    DRAIN_FLAG,
    DRAIN_FLAG_TTL,
    REDIS_PAUSE_SECONDS,
    SIGNAL_COALESCE_SECONDS,
    request_drain,
)
from portal.services.events.writer import _GroupWriter, _Pending, _store
from portal.services.media import (  # fetch and serve live in services.media; re-exported here
    fetch_media,
    media_for_message,
    media_record,
    queue_downloads,
    requeue_pending,
)

__all__ = [
    "BATCH_SIZE",
    "CLOCK_SKEW_SECONDS",
    "DRAIN_BUDGET_SECONDS",
    "DRAIN_FLAG",
    "DRAIN_FLAG_TTL",
    "HANDLERS",
    "MAX_ATTEMPTS",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "REDIS_PAUSE_SECONDS",
    "REPLAY_WINDOW_SECONDS",
    "SIGNAL_COALESCE_SECONDS",
    "UNKNOWN_SESSION_WAITS",
    "WAHA",
    "DrainResult",
    "IngestResult",
    "count_by_status",
    "drain",
    "failed_events",
    "fetch_media",
    "forget_session_key",
    "ingest",
    "media_for_message",
    "media_record",
    "parse_events",
    "preassign_ids",
    "process_batch",
    "queue_downloads",
    "replay_event",
    "request_drain",
    "requeue_pending",
    "signature_ok",
    "sweep",
    "_GroupWriter",
    "_Incoming",
    "_Pending",
    "_apply_all",
    "_claim",
    "_store",
]
