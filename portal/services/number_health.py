"""Number health: WhatsApp's 2026 limits on reaching new contacts, read from WAHA and acted on.

WhatsApp may put an account under a *reach-out timelock* (`GET /api/sessions/{s}/timelock`: while `isActive`, it
refuses messages to new contacts with error 463 until `timeEnforcementEnds`) and caps the new chats it may open
per cycle (`GET /api/sessions/{s}/capping`: `cappingStatus` NONE, FIRST_WARNING, SECOND_WARNING, or CAPPED, which
refuses new chats with error 475 until `cycleEnd`). Under either the session is healthy and stays WORKING:
restarting, logging out or re-pairing it is wrong, and only messages to *new* contacts must wait.

The readings add up to a level: `ok`, `warning` (a capping warning) or `limited` (CAPPED, or an active timelock),
and to `new_contacts_blocked_until`, which the send path reads with the session (no extra round trip): a
transactional send to a number the session has no chat with is refused with 409 `new_contact_limited` and that
time, while replies to existing chats keep flowing.

Readings come from a scheduled check of every WORKING session (`check_due`, a few minutes apart per session),
right after a send fails with 463/475 (`schedule_check`), and for free whenever WAHA includes them in a session's
`me` (the sync's session list) or in a `session.status` event's `data`. The tenant's owners and admins are told
once per level per episode (mail and a `session.limited` event to their webhook endpoints); the episode ends when
the level is back to `ok`. Other parts react to changes through `on_change` listeners (campaigns pause
themselves at SECOND_WARNING).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import force_locale
from sqlalchemy import or_, select

from portal import queue
from portal.extensions import db
from portal.i18n import DEFAULT_LOCALE
from portal.i18n import gettext as _
from portal.models import Tenant, WahaSession, utcnow
from portal.services import audit, servers
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

LEVELS = ("ok", "warning", "limited")
WARNINGS = ("FIRST_WARNING", "SECOND_WARNING")
CHECK_EVERY = timedelta(minutes=5)
BATCH = 200
# A CAPPED reading without a cycle end still blocks until the next check can tell more.
_UNKNOWN_END = CHECK_EVERY

_listeners: list[Callable[[WahaSession, dict[str, Any]], None]] = []


def on_change(listener: Callable[[WahaSession, dict[str, Any]], None]) -> None:
    """Call `listener(session, previous_limits)` after a session's readings changed (in the caller's
    transaction, before its commit)."""
    if listener not in _listeners:
        _listeners.append(listener)


@dataclass(frozen=True)
class Notice:
    tenant_id: int
    session_id: str
    session_name: str
    level: str
    summary: str
    blocked_until: datetime | None


def _at(seconds: Any) -> datetime | None:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(float(seconds), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def assess(timelock: dict | None, capping: dict | None, now: datetime) -> tuple[str, datetime | None]:
    """The level and until when new contacts are refused, from the two readings (either may be missing)."""
    level, blocked = "ok", None
    if isinstance(timelock, dict) and timelock.get("isActive") is True:
        ends = _at(timelock.get("timeEnforcementEnds"))
        if ends is None or ends > now:
            level, blocked = "limited", ends or now + _UNKNOWN_END
    status = capping.get("cappingStatus") if isinstance(capping, dict) else None
    if status == "CAPPED":
        ends = _at(capping.get("cycleEnd")) if isinstance(capping, dict) else None
        until = ends if ends is not None and ends > now else now + _UNKNOWN_END
        level, blocked = "limited", max(blocked, until) if blocked else until
    elif isinstance(status, str) and status not in ("NONE", "") and level == "ok":
        level = "warning"  # FIRST_WARNING, SECOND_WARNING, or a value WhatsApp added since (an open set)
    return level, blocked


def describe(session: WahaSession) -> dict[str, Any]:
    """What the pages and the API show of a session's number health."""
    limits = session.limits or {}
    capping: dict[str, Any] = limits["capping"] if isinstance(limits.get("capping"), dict) else {}
    timelock: dict[str, Any] = limits["timelock"] if isinstance(limits.get("timelock"), dict) else {}
    blocked = _aware(session.new_contacts_blocked_until)
    return {
        "level": session.limit_level or "ok",
        "newContactsBlockedUntil": blocked.isoformat() if blocked and blocked > utcnow() else None,
        "timelock": {
            "active": bool(timelock.get("isActive")),
            "endsAt": (ends.isoformat() if (ends := _at(timelock.get("timeEnforcementEnds"))) else None),
            "enforcementType": timelock.get("enforcementType"),
        },
        "capping": {
            "status": capping.get("cappingStatus"),
            "totalQuota": capping.get("totalQuota"),
            "usedQuota": capping.get("usedQuota"),
            "cycleEnd": (end.isoformat() if (end := _at(capping.get("cycleEnd"))) else None),
        },
        "checkedAt": (checked.isoformat() if (checked := _aware(session.limits_checked_at)) else None),
    }


def summary(session: WahaSession) -> str:
    """One sentence for a banner, a mail and the event."""
    info = describe(session)
    until = info["newContactsBlockedUntil"]
    if info["timelock"]["active"] and until:
        return _(
            "WhatsApp restricts this number from messaging new contacts until %(until)s (a reach-out timelock). "
            "Replies to existing chats still go out; do not restart or re-pair the session.",
            until=until,
        )
    status = info["capping"]["status"]
    used, total = info["capping"]["usedQuota"], info["capping"]["totalQuota"]
    if status == "CAPPED":
        return _(
            "This number used its new-chat quota (%(used)s of %(total)s); new contacts wait until %(until)s. "
            "Replies to existing chats still go out.",
            used=used,
            total=total,
            until=until,
        )
    if info["level"] == "warning":
        return _(
            "WhatsApp warns that this number nears its new-chat quota (%(status)s: %(used)s of %(total)s used). "
            "Slow down messages to new contacts.",
            status=status,
            used=used,
            total=total,
        )
    return _("WhatsApp does not limit this number.")


def apply(
    session: WahaSession, *, timelock: dict | None = None, capping: dict | None = None, source: str = "check"
) -> Notice | None:
    """Record new readings (None keeps the stored one of that kind) and return a notice when the tenant must be
    told (a higher level than told before in this episode). The caller commits."""
    previous = dict(session.limits or {})
    limits = dict(previous)
    if timelock is not None:
        limits["timelock"] = timelock
    if capping is not None:
        limits["capping"] = capping
    now = utcnow()
    level, blocked = assess(limits.get("timelock"), limits.get("capping"), now)
    before = session.limit_level or "ok"
    session.limits = limits
    session.limits_checked_at = now
    session.limit_level = level
    session.new_contacts_blocked_until = blocked
    if limits != previous:
        for listener in list(_listeners):
            listener(session, previous)
    if level != before:
        audit.record(
            session.tenant_id,
            "session.limits_changed",
            audit.SYSTEM,
            target_type="session",
            target_id=session.id,
            details={
                "from": before,
                "to": level,
                "source": source,
                "capping": (limits.get("capping") or {}).get("cappingStatus"),
                "timelockActive": bool((limits.get("timelock") or {}).get("isActive")),
                "newContactsBlockedUntil": blocked.isoformat() if blocked else None,
            },
        )
        log.info("session %s number health %s -> %s (%s)", session.id, before, level, source)
    if level == "ok":
        session.limit_told = None
        session.limit_since = None
        return None
    if session.limit_since is None:
        session.limit_since = now
    if LEVELS.index(level) <= LEVELS.index(session.limit_told or "ok"):
        return None
    session.limit_told = level
    return Notice(session.tenant_id, session.id, session.name, level, summary(session), blocked)


def from_me(session: WahaSession, me: Any, *, source: str) -> Notice | None:
    """Apply the readings WAHA put in a session's `me` (`reachoutTimelock`, `messageCapping`), when it did."""
    if not isinstance(me, dict):
        return None
    timelock, capping = me.get("reachoutTimelock"), me.get("messageCapping")
    if not isinstance(timelock, dict) and not isinstance(capping, dict):
        return None
    return apply(
        session,
        timelock=timelock if isinstance(timelock, dict) else None,
        capping=capping if isinstance(capping, dict) else None,
        source=source,
    )


def _read(client: Any, call: str, name: str) -> dict | None:
    """One reading; None when this WAHA or engine cannot give it (older image, not implemented)."""
    try:
        value = getattr(client, call)(name)
    except (waha_errors.WahaNotFound, waha_errors.WahaNotImplemented):
        return None
    except waha_errors.WahaError as exc:
        if exc.status == 422 and not isinstance(exc, waha_errors.WahaSessionNotReady):
            return None
        raise
    return value if isinstance(value, dict) else None


def check(session: WahaSession) -> Notice | None:
    """Ask WAHA for both readings of a WORKING session and apply them (the caller commits and tells)."""
    client = servers.client_for(session.server)
    timelock = _read(client, "get_timelock", session.external_name)
    capping = _read(client, "get_capping", session.external_name)
    if timelock is None and capping is None:
        session.limits_checked_at = utcnow()  # nothing to read here: do not ask again before the next round
        return None
    return apply(session, timelock=timelock, capping=capping, source="check")


def check_session(session_id: str) -> dict[str, Any] | None:
    """Check one session now (after a 463/475 refusal); None when it is gone or not WORKING."""
    session = db.session.get(WahaSession, session_id)
    if session is None or session.status != "WORKING":
        return None
    try:
        notice = check(session)
    except waha_errors.WahaError as exc:
        db.session.rollback()
        log.info("number health of session %s not read: %s", session_id, exc)
        return None
    tell([notice] if notice else [])
    return describe(session)


def check_due(limit: int = BATCH) -> int:
    """Check the WORKING sessions whose last reading is older than CHECK_EVERY (oldest first, `limit` a run)."""
    stale = utcnow() - CHECK_EVERY
    rows = list(
        db.session.scalars(
            select(WahaSession)
            .where(
                WahaSession.status == "WORKING",
                or_(WahaSession.limits_checked_at.is_(None), WahaSession.limits_checked_at < stale),
            )
            .order_by(WahaSession.limits_checked_at.asc().nulls_first(), WahaSession.id)
            .limit(limit)
        )
    )
    notices: list[Notice] = []
    checked = 0
    for session in rows:
        try:
            notice = check(session)
        except waha_errors.WahaError as exc:
            log.info("number health of session %s not read: %s", session.id, exc)
            session.limits_checked_at = utcnow()  # try again next round, not at once
            continue
        checked += 1
        if notice is not None:
            notices.append(notice)
    tell(notices)
    return checked


def schedule_check(session_id: str) -> None:
    """Read the session's limits again soon (a send was just refused with 463 or 475)."""
    try:
        queue.enqueue(queue.JOB_CHECK_NUMBER_HEALTH, session_id, queue=queue.QUEUE_MAINTENANCE)
    except Exception:
        log.warning("could not queue a number health check of session %s", session_id, exc_info=True)


def tell(notices: list[Notice]) -> None:
    """Plan `session.limited` deliveries, commit, then mail the tenant's owners and admins."""
    from portal.services import attention, forwarding

    delivery_ids: list[int] = []
    for notice in notices:
        session = db.session.get(WahaSession, notice.session_id)
        data = {
            "level": notice.level,
            "message": notice.summary,
            "newContactsBlockedUntil": notice.blocked_until.isoformat() if notice.blocked_until else None,
            "limits": describe(session) if session is not None else None,
        }
        rows = forwarding.plan_portal_event(notice.tenant_id, "session.limited", data, session)
        db.session.flush()
        delivery_ids += [row.id for row in rows]
    db.session.commit()
    if not notices:
        return
    from portal.mail import send_mail

    base = current_app.config.get("PUBLIC_BASE_URL", "").rstrip("/")
    for notice in notices:
        tenant = db.session.get(Tenant, notice.tenant_id)
        if tenant is None:
            continue
        session = db.session.get(WahaSession, notice.session_id)
        for address, language in attention.recipients_with_language(notice.tenant_id):
            with force_locale(language or DEFAULT_LOCALE):  # each reader in their own language
                subject = _("[WAHA Portal] WhatsApp limits session '%(name)s'", name=notice.session_name)
                words = summary(session) if session is not None else notice.summary
                link = f"{base}/sessions/{notice.session_id}"
                body = _("%(summary)s\n\nOpen the portal: %(url)s\n", summary=words, url=link)
            try:
                send_mail(address, subject, body)
            except Exception:
                log.warning("could not mail %s about session %s", address, notice.session_id, exc_info=True)
    forwarding.queue_deliveries(delivery_ids)


def new_contact_gate(item: Any, session: Any) -> Any:
    """The send queue's gate (services.outreach): a scheduled or campaign message to a number the session has no
    chat with waits while WhatsApp limits new contacts (until the timelock ends or the cap lifts); messages to
    existing chats go on."""
    until = _aware(getattr(session, "new_contacts_blocked_until", None))
    if until is None or until <= utcnow():
        return None
    from portal.models import Chat
    from portal.services.inbox.upkeep import known_chat
    from portal.services.outreach import Hold

    known = db.session.scalar(select(Chat.id).where(*known_chat(item.session_id, item.chat_id)).limit(1))
    if known is not None:
        return None
    return Hold(until, "WhatsApp limits new contacts of this number")
