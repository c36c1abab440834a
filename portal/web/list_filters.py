"""The filters of the list pages as their forms give them, shared by each page and its CSV export (so the export
holds the rows the page lists)."""

from __future__ import annotations

from typing import Any

from portal.services import messages as messages_service
from portal.services.audit import AuditFilters
from portal.services.errors import Invalid
from portal.services.messages import LogFilters
from portal.web.helpers import day_start


def chat_id_from(value: str) -> str:
    """What people type for a chat (+49 170 1234567) as WAHA spells it (491701234567@c.us); anything that is
    not a number or chat id is searched as typed."""
    try:
        return messages_service.normalize_recipient(value)
    except Invalid:
        return value.strip()


def log_filters(form: Any) -> LogFilters:
    """The message log's filters as the (validated) MessageFilterForm gives them."""
    return LogFilters(
        session_id=form.session.data or None,
        direction=form.direction.data or None,
        status=form.status.data or None,
        chat_id=chat_id_from(form.chat.data) if form.chat.data else None,
        q=(form.q.data or "").strip() or None,
        since=day_start(form.since.data),
        until=day_start(form.until.data, plus_days=1),  # "to" includes that whole day
    )


def audit_filters(data: dict[str, Any]) -> AuditFilters:
    """The audit log's filters from the (validated) AuditFilterForm's data."""
    return AuditFilters(
        action=(data.get("action") or "").strip() or None,
        actor=(data.get("actor") or "").strip() or None,
        target_id=(data.get("target") or "").strip() or None,
        since=day_start(data.get("since")),
        until=day_start(data.get("until"), plus_days=1),  # "to" includes that whole day
    )
