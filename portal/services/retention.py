"""Retention: how long a tenant's messages, stored media files and webhook events are kept.

The platform sets the longest period of each kind (`RETENTION_MESSAGES_DAYS`, `RETENTION_MEDIA_DAYS`,
`RETENTION_EVENTS_DAYS`); a tenant may only shorten it (Administration > Settings). A tenant's stored value above
the platform's (a row older than the setting, or a platform default lowered later) counts as the platform's: the
retention job applies `effective_days`. Media retention deletes the stored files and marks the message rows
(`media.status` "unavailable", `media.expired_at`), so the messages stay readable without their attachments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import Message, Tenant
from portal.services.errors import Invalid

log = logging.getLogger(__name__)

# tenant column -> (platform setting, what it is called in messages)
KINDS = {
    "retention_messages_days": ("RETENTION_MESSAGES_DAYS", N_("Message retention")),
    "retention_media_days": ("RETENTION_MEDIA_DAYS", N_("Media retention")),
    "retention_events_days": ("RETENTION_EVENTS_DAYS", N_("Event retention")),
}
MEDIA_CHUNK = 1000
EXPIRED_REASON = "deleted after the retention period"


def platform_days() -> dict[str, int]:
    """The platform's longest retention of each kind, by tenant column name."""
    return {column: int(current_app.config[setting]) for column, (setting, _label) in KINDS.items()}


def check_days(column: str, value: int) -> None:
    """Invalid (on the field) when a tenant asks to keep data longer than the platform allows."""
    limit = platform_days()[column]
    if value > limit:
        label = KINDS[column][1]
        raise Invalid.field(
            column,
            N_f(
                "%(label)s may be at most %(limit)s days: the platform keeps data no longer than that. "
                "You can only shorten it.",
                label=N_f(label),
                limit=limit,
            ),
        )


@dataclass(frozen=True)
class Retention:
    """A tenant's retention as the job applies it, in days."""

    messages: int
    media: int
    events: int


def effective_days(messages: int | None, media: int | None, events: int | None) -> Retention:
    """What the job applies for these stored values: each capped by the platform; media no longer than messages."""
    limit = platform_days()
    kept_messages = min(messages or limit["retention_messages_days"], limit["retention_messages_days"])
    kept_media = min(media or limit["retention_media_days"], limit["retention_media_days"], kept_messages)
    kept_events = min(events or limit["retention_events_days"], limit["retention_events_days"])
    return Retention(messages=kept_messages, media=kept_media, events=kept_events)


def of_tenant(tenant: Tenant) -> Retention:
    return effective_days(tenant.retention_messages_days, tenant.retention_media_days, tenant.retention_events_days)


def prune_media(tenant_id: int, cutoff: datetime, now: datetime) -> int:
    """Delete the stored files of the tenant's messages older than `cutoff` and mark their rows; how many files.

    The rows are marked and committed first, the files deleted after (services.media_files: no row ever names a
    deleted file)."""
    from portal.services.media_files import delete_files

    total = 0
    stamp = now.isoformat()
    while True:
        rows = db.session.execute(
            select(Message.id, Message.media)
            .where(
                Message.tenant_id == tenant_id,
                Message.created_at < cutoff,
                Message.media.is_not(None),
            )
            .where(_has_key())
            .limit(MEDIA_CHUNK)
        ).all()
        if not rows:
            db.session.commit()  # ends the read: no lock on messages is kept (partition work needs none held)
            return total
        keys: list[str] = []
        for message_id, media in rows:
            if not isinstance(media, dict):
                continue
            keys.append(str(media["key"]))
            kept = {k: v for k, v in media.items() if k not in ("key", "source")}
            kept.update(status="unavailable", reason=EXPIRED_REASON, expired_at=stamp)
            db.session.execute(
                update(Message)
                .where(Message.id == message_id, Message.tenant_id == tenant_id, Message.created_at < cutoff)
                .values(media=kept)
                .execution_options(synchronize_session=False)
            )
        db.session.commit()
        total += delete_files(keys)


def _has_key() -> Any:
    if db.engine.dialect.name == "postgresql":
        return Message.media.op("?")("key")
    from sqlalchemy import func

    return func.json_extract(Message.media, "$.key").is_not(None)
