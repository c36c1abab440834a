"""Quick replies: a tenant's saved answers, inserted by their shortcut ("/" in the composer).

Admins manage them (the views require `quick_replies:manage`), every member lists and uses them. `render` fills in the
variables `{{name}}` (the chat's display name) and `{{phone}}` (the formatted number); other text is kept as is.
Every change is audited.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import QuickReply, Tenant, get_for_tenant
from portal.services import audit
from portal.services.audit import Actor
from portal.services.contacts import format_number
from portal.services.errors import Conflict, Invalid, NotFound
from portal.services.recipients import phone_of

SHORTCUT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
TEXT_MAX = 4096
MAX_PER_TENANT = 500
VARIABLES = ("name", "phone")
_SHORTCUT = re.compile(SHORTCUT_PATTERN)
_VARIABLE = re.compile(r"\{\{\s*(name|phone)\s*\}\}")


def _shortcut(value: Any) -> str:
    if not isinstance(value, str) or not _SHORTCUT.match(value.strip().lower()):
        raise Invalid.field(
            "shortcut", N_("Use 1-40 lower-case letters, digits, - or _, starting with a letter or digit.")
        )
    return value.strip().lower()


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid.field("text", N_("Write the reply's text."))
    if len(value) > TEXT_MAX:
        raise Invalid.field("text", N_f("The text must be at most %(TEXT_MAX)s characters.", TEXT_MAX=TEXT_MAX))
    return value.strip()


def list_replies(tenant: Tenant) -> list[QuickReply]:
    """The tenant's quick replies, by shortcut."""
    return list(db.session.scalars(QuickReply.scoped(tenant.id).order_by(QuickReply.shortcut)))


def find_replies(tenant: Tenant, prefix: Any, *, limit: int = 10) -> list[QuickReply]:
    """The composer's picker: the tenant's replies whose shortcut starts with `prefix` (a leading "/" and case
    are ignored; empty: all), by shortcut, at most `limit`."""
    prefix = prefix.strip().lstrip("/").lower() if isinstance(prefix, str) else ""
    stmt = QuickReply.scoped(tenant.id)
    if prefix:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(QuickReply.shortcut.like(f"{escaped}%", escape="\\"))
    return list(db.session.scalars(stmt.order_by(QuickReply.shortcut).limit(limit)))


def get_reply(tenant: Tenant, reply_id: Any) -> QuickReply:
    reply = get_for_tenant(db.session, QuickReply, tenant.id, reply_id)
    if reply is None:
        raise NotFound(N_("No such quick reply."), code="quick_reply_not_found")
    return reply


def _taken(shortcut: str) -> Conflict:
    return Conflict(
        N_f("There is already a quick reply /%(shortcut)s.", shortcut=shortcut),
        code="quick_reply_exists",
        details={"fields": [{"field": "shortcut", "message": "This shortcut is taken."}]},
    )


def _save(tenant: Tenant, reply: QuickReply, action: str, actor: Actor) -> QuickReply:
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise _taken(reply.shortcut) from None
    _record(tenant, reply, action, actor)
    db.session.commit()
    return reply


def _record(tenant: Tenant, reply: QuickReply, action: str, actor: Actor) -> None:
    details = {"shortcut": reply.shortcut}
    audit.record(tenant.id, action, actor, target_type="quick_reply", target_id=reply.id, details=details)


def create_reply(tenant: Tenant, actor: Actor, *, shortcut: Any, text: Any) -> QuickReply:
    """A new quick reply; Conflict quick_reply_exists when the shortcut is taken."""
    shortcut, text = _shortcut(shortcut), _text(text)
    count = db.session.scalar(select(sa.func.count(QuickReply.id)).where(QuickReply.tenant_id == tenant.id)) or 0
    if count >= MAX_PER_TENANT:
        raise Conflict(
            N_f("A tenant can keep at most %(MAX_PER_TENANT)s quick replies.", MAX_PER_TENANT=MAX_PER_TENANT),
            code="quick_reply_limit",
        )
    reply = QuickReply(tenant_id=tenant.id, shortcut=shortcut, text=text)
    db.session.add(reply)
    return _save(tenant, reply, "quick_reply.create", actor)


def update_reply(tenant: Tenant, reply_id: Any, actor: Actor, *, shortcut: Any = None, text: Any = None) -> QuickReply:
    """Change a quick reply's shortcut and/or text."""
    new_shortcut = _shortcut(shortcut) if shortcut is not None else None
    new_text = _text(text) if text is not None else None
    reply = get_reply(tenant, reply_id)
    if new_shortcut is not None:
        reply.shortcut = new_shortcut
    if new_text is not None:
        reply.text = new_text
    return _save(tenant, reply, "quick_reply.update", actor)


def delete_reply(tenant: Tenant, reply_id: Any, actor: Actor) -> None:
    reply = get_reply(tenant, reply_id)
    _record(tenant, reply, "quick_reply.delete", actor)
    db.session.delete(reply)
    db.session.commit()


def render(text: str, *, name: str | None, chat_id: str | None) -> str:
    """The reply's text with `{{name}}` and `{{phone}}` filled in (empty when unknown)."""
    values = {"name": name or "", "phone": format_number(chat_id) if chat_id and phone_of(chat_id) else ""}
    return _VARIABLE.sub(lambda match: values[match.group(1)], text)
