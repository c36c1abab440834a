"""Telling a tenant that a session needs a person: it FAILED, was logged out, or needs a new QR scan.

One notice per episode: `WahaSession.attention` holds the reason from the first sign until the session is WORKING
again, so a status that repeats (every sync, every QR rotation) does not mail again. A notice is a
"session.attention" event to the tenant's endpoints (planned in the caller's transaction) and a mail to the
tenant's owners and admins (sent after the commit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import force_locale
from sqlalchemy import select

from portal.extensions import db
from portal.i18n import DEFAULT_LOCALE, N_
from portal.i18n import gettext as _
from portal.models import AuditEvent, Membership, Tenant, User, WahaSession, WebhookDelivery, utcnow
from portal.services import audit

log = logging.getLogger(__name__)

REASONS = {
    "failed": N_("The session failed. Restart it; if it fails again, log it out and scan a new QR code."),
    "logged_out": N_(
        "The phone no longer answers for this session: it was probably logged out on the phone. "
        "Restart the session and scan a new QR code."
    ),
    "needs_qr": N_("The session was logged out and waits for a new QR scan."),
}
# A logout the user asked for in the portal is not news to them.
_OWN_LOGOUT_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class Notice:
    tenant_id: int
    session_id: str
    session_name: str
    reason: str
    status: str
    since: datetime


def evaluate(session: WahaSession, previous_status: str | None, previous_me: Any) -> Notice | None:
    """Look at a session after a status change; returns a notice when a new episode starts (caller commits)."""
    status = session.status
    if status == "WORKING":
        clear(session)
        return None
    if status == "FAILED":
        return raise_attention(session, "failed")
    if status == "SCAN_QR_CODE" and (previous_status == "WORKING" or previous_me is not None):
        if _logged_out_by_user(session):
            return None
        return raise_attention(session, "needs_qr")
    return None


def _logged_out_by_user(session: WahaSession) -> bool:
    since = utcnow() - _OWN_LOGOUT_WINDOW
    return (
        db.session.scalar(
            select(AuditEvent.id)
            .where(
                AuditEvent.target_type == "session",
                AuditEvent.target_id == session.id,
                AuditEvent.action == "session.logout",
                AuditEvent.created_at >= since,
            )
            .limit(1)
        )
        is not None
    )


def raise_attention(session: WahaSession, reason: str) -> Notice | None:
    """Mark the session as needing attention; None when this episode was already announced."""
    if session.attention is not None:
        return None
    session.attention = reason
    session.attention_since = utcnow()
    audit.record(
        session.tenant_id,
        "session.attention",
        audit.SYSTEM,
        target_type="session",
        target_id=session.id,
        details={"reason": reason, "status": session.status},
    )
    log.info("session %s needs attention: %s", session.id, reason)
    return Notice(
        tenant_id=session.tenant_id,
        session_id=session.id,
        session_name=session.name,
        reason=reason,
        status=session.status,
        since=session.attention_since,
    )


def clear(session: WahaSession) -> None:
    """End the episode (the session works again)."""
    if session.attention is not None:
        session.attention = None
        session.attention_since = None


def plan_notices(notices: list[Notice]) -> list[WebhookDelivery]:
    """ "session.attention" deliveries for each notice, in the caller's transaction."""
    from portal.services import forwarding

    rows: list[WebhookDelivery] = []
    for notice in notices:
        session = db.session.get(WahaSession, notice.session_id)
        data = {
            "reason": notice.reason,
            "status": notice.status,
            "message": REASONS.get(notice.reason, ""),
            "since": notice.since.isoformat(),
        }
        rows += forwarding.plan_portal_event(notice.tenant_id, "session.attention", data, session)
    return rows


def recipients(tenant_id: int) -> list[str]:
    """Mail addresses of the tenant's active owners and admins."""
    stmt = (
        select(User.email)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.tenant_id == tenant_id, Membership.role.in_(("owner", "admin")), User.is_active_user.is_(True)
        )
        .order_by(User.email)
    )
    return list(db.session.scalars(stmt))


def recipients_with_language(tenant_id: int) -> list[tuple[str, str | None]]:
    """recipients() with each one's chosen language (None: none chosen), for mails in the reader's language."""
    stmt = (
        select(User.email, User.language)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.tenant_id == tenant_id, Membership.role.in_(("owner", "admin")), User.is_active_user.is_(True)
        )
        .order_by(User.email)
    )
    return [(email, language) for email, language in db.session.execute(stmt)]


def send_mails(notices: list[Notice]) -> None:
    """Mail each notice to the tenant's owners and admins (after the commit; a mail failure is logged only)."""
    from portal.mail import send_mail

    for notice in notices:
        tenant = db.session.get(Tenant, notice.tenant_id)
        if tenant is None:
            continue
        base = current_app.config.get("PUBLIC_BASE_URL", "").rstrip("/")
        for address, language in recipients_with_language(notice.tenant_id):
            with force_locale(language or DEFAULT_LOCALE):  # each reader in their own language
                reason = REASONS.get(notice.reason)
                link = f"{base}/sessions/{notice.session_id}"
                body = _(
                    "The WhatsApp session '%(name)s' of %(tenant)s needs attention.\n\n"
                    "Status: %(status)s\n%(reason)s\n\nOpen the portal: %(url)s\n",
                    name=notice.session_name,
                    tenant=tenant.name,
                    status=notice.status,
                    reason=_(reason) if reason else "",
                    url=link,
                )
                subject = _("[WAHA Portal] Session '%(name)s' needs attention", name=notice.session_name)
            try:
                send_mail(address, subject, body)
            except Exception:
                log.warning("could not mail %s about session %s", address, notice.session_id, exc_info=True)


def notify(session: WahaSession, reason: str) -> bool:
    """Raise attention outside event processing (sync, watchdog): plan, commit, mail. True when announced."""
    from portal.services import forwarding

    notice = raise_attention(session, reason)
    if notice is None:
        return False
    deliveries = plan_notices([notice])
    db.session.flush()
    ids = [d.id for d in deliveries]
    db.session.commit()
    send_mails([notice])
    forwarding.queue_deliveries(ids)
    return True
