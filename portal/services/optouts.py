"""The tenant's opt-out (suppression) list.

A number lands on the list when its owner writes one of the tenant's opt-out keywords as a whole message (default:
STOP, UNSUBSCRIBE and their Portuguese, Spanish and German forms; compared without case, accents, surrounding
spaces or closing punctuation), when a member adds it, or from a CSV import. Campaigns and scheduled messages
never go to a number on the list (the send reads the list with its session lookup; the queue records such an
item as skipped, "opted_out"); a one-off send to it is refused with 409
`recipient_opted_out` unless an owner or admin overrides (services.messages.sending). Every change is audited.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import ApiToken, Membership, Message, OptOut, OptOutSettings, Tenant
from portal.pagination import id_page
from portal.services import audit
from portal.services.audit import Actor
from portal.services.csvtext import csv_rows
from portal.services.errors import Forbidden, Invalid, NotFound
from portal.services.messages.validation import normalize_recipient

log = logging.getLogger(__name__)

DEFAULT_KEYWORDS = (
    "STOP",
    "UNSUBSCRIBE",
    # Portuguese
    "PARAR",
    "SAIR",
    "DESCADASTRAR",
    "CANCELAR",
    # Spanish
    "BAJA",
    "DARSE DE BAJA",
    "CANCELAR SUSCRIPCIÓN",
    # German
    "STOPP",
    "ABMELDEN",
    "ABBESTELLEN",
)
DEFAULT_CONFIRM_TEXT = "You will not receive further messages from us. Reply START to opt back in."
KEYWORDS_MAX = 50
KEYWORD_MAX = 60
CONFIRM_MAX = 1000
IMPORT_MAX_BYTES = 5 * 1024 * 1024


def normalize(text: str) -> str:
    """A message as keywords are compared: no accents, case folded, inner spaces collapsed, no closing
    punctuation ("  Stop! " and "stop" are the same; "Não" is "nao")."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split()).strip(" .!?¡¿")


@dataclass(frozen=True)
class Settings:
    keywords: tuple[str, ...]
    confirm: bool
    confirm_text: str


def settings_for(tenant_id: int) -> Settings:
    """The tenant's keywords and confirmation reply (the defaults until the tenant changes them)."""
    row = db.session.get(OptOutSettings, tenant_id)
    if row is None:
        return Settings(DEFAULT_KEYWORDS, False, DEFAULT_CONFIRM_TEXT)
    return Settings(tuple(row.keywords or ()), bool(row.confirm), row.confirm_text or DEFAULT_CONFIRM_TEXT)


def clean_keywords(raw: Any) -> list[str]:
    """Keywords from a list or from text with one keyword a line; Invalid(field "keywords") when bad."""
    if isinstance(raw, str):
        raw = raw.splitlines()
    if not isinstance(raw, list | tuple) or not all(isinstance(k, str) for k in raw):
        raise Invalid.field("keywords", N_("Keywords must be a list of words."))
    seen: dict[str, str] = {}
    for keyword in raw:
        keyword = " ".join(keyword.split())
        if len(keyword) > KEYWORD_MAX:
            raise Invalid.field(
                "keywords", N_f("A keyword may have at most %(KEYWORD_MAX)s characters.", KEYWORD_MAX=KEYWORD_MAX)
            )
        if keyword and normalize(keyword):
            seen.setdefault(normalize(keyword), keyword)
    if not seen:
        raise Invalid.field("keywords", N_("Give at least one keyword."))
    if len(seen) > KEYWORDS_MAX:
        raise Invalid.field("keywords", N_f("At most %(KEYWORDS_MAX)s keywords.", KEYWORDS_MAX=KEYWORDS_MAX))
    return list(seen.values())


def update_settings(
    tenant: Tenant, actor: Actor, *, keywords: Any, confirm: bool, confirm_text: str | None
) -> Settings:
    """Change the tenant's keywords and confirmation reply; audited as opt_out.settings."""
    cleaned = clean_keywords(keywords)
    text = (confirm_text or "").strip() or None
    if text and len(text) > CONFIRM_MAX:
        raise Invalid.field(
            "confirm_text", N_f("The reply may have at most %(CONFIRM_MAX)s characters.", CONFIRM_MAX=CONFIRM_MAX)
        )
    if confirm and not text:
        text = DEFAULT_CONFIRM_TEXT
    row = db.session.get(OptOutSettings, tenant.id) or OptOutSettings(tenant_id=tenant.id)
    before = {"keywords": list(row.keywords or DEFAULT_KEYWORDS), "confirm": bool(row.confirm)}
    row.keywords, row.confirm, row.confirm_text = cleaned, bool(confirm), text
    db.session.add(row)
    audit.record(
        tenant.id,
        "opt_out.settings",
        actor,
        target_type="tenant",
        target_id=tenant.id,
        details={"before": before, "after": {"keywords": cleaned, "confirm": bool(confirm)}},
    )
    db.session.commit()
    return settings_for(tenant.id)


def _chat_id(value: Any, field: str = "phone") -> str:
    try:
        return normalize_recipient(value)
    except Invalid as exc:
        raise Invalid.field(field, exc.message) from None


def is_opted_out(tenant_id: int, chat_id: str) -> bool:
    """Whether the number is on the tenant's list."""
    stmt = select(OptOut.id).where(OptOut.tenant_id == tenant_id, OptOut.chat_id == chat_id)
    return db.session.scalar(stmt) is not None


def opted_out_among(tenant_id: int, chat_ids: Iterable[str]) -> set[str]:
    """Which of these chat ids are on the tenant's list: a few are looked up, many (an audience) are matched
    against the whole list read once (an IN list of thousands costs the database far more)."""
    wanted = set(chat_ids)
    if not wanted:
        return set()
    stmt = select(OptOut.chat_id).where(OptOut.tenant_id == tenant_id)
    if len(wanted) <= 500:
        return set(db.session.scalars(stmt.where(OptOut.chat_id.in_(wanted))))
    return {chat_id for chat_id in db.session.scalars(stmt.execution_options(yield_per=5000)) if chat_id in wanted}


def add(tenant: Tenant, actor: Actor, phone: Any, *, source: str = "manual", note: str | None = None) -> OptOut:
    """Put a number on the list (a number already there is left as it is); audited as opt_out.add."""
    return add_one(tenant, actor, phone, source=source, note=note)[0]


def add_one(
    tenant: Tenant, actor: Actor, phone: Any, *, source: str = "manual", note: str | None = None
) -> tuple[OptOut, bool]:
    """`add`, also telling whether the number is new on the list (False: it was listed already, nothing changed,
    nothing audited; a concurrent add of the same number counts as already listed)."""
    chat_id = _chat_id(phone)
    if note is not None and not isinstance(note, str):
        raise Invalid.field("note", N_("The note must be text."))
    existing = db.session.scalar(select(OptOut).where(OptOut.tenant_id == tenant.id, OptOut.chat_id == chat_id))
    if existing is not None:
        return existing, False
    row = OptOut(tenant_id=tenant.id, chat_id=chat_id, source=source, note=(note or "").strip()[:200] or None)
    row.created_by = actor.label
    try:
        with db.session.begin_nested():  # a concurrent add of the same number: the unique key answers
            db.session.add(row)
            db.session.flush()
    except IntegrityError:
        db.session.rollback()
        existing = db.session.scalar(select(OptOut).where(OptOut.tenant_id == tenant.id, OptOut.chat_id == chat_id))
        if existing is None:
            raise
        return existing, False
    audit.record(tenant.id, "opt_out.add", actor, target_type="opt_out", target_id=chat_id, details={"source": source})
    db.session.commit()
    return row, True


def remove(tenant: Tenant, actor: Actor, phone: Any) -> None:
    """Take a number off the list (NotFound "opt_out_not_found" when it is not on it); audited as opt_out.remove."""
    chat_id = _chat_id(phone)
    stmt = delete(OptOut).where(OptOut.tenant_id == tenant.id, OptOut.chat_id == chat_id)
    if db.session.execute(stmt).rowcount == 0:  # type: ignore[attr-defined]
        db.session.rollback()
        raise NotFound(N_("That number is not on the opt-out list."), code="opt_out_not_found")
    audit.record(tenant.id, "opt_out.remove", actor, target_type="opt_out", target_id=chat_id)
    db.session.commit()


@dataclass
class OptOutPage:
    items: list[OptOut]
    total: int


def list_opt_outs(tenant: Tenant, *, q: str | None = None, offset: int = 0, limit: int = 100) -> OptOutPage:
    """The tenant's list, newest first; q narrows to numbers containing its digits."""
    stmt = OptOut.scoped(tenant.id)
    digits = "".join(ch for ch in (q or "") if ch.isdigit())
    if digits:
        stmt = stmt.where(OptOut.chat_id.contains(digits))
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    items = list(db.session.scalars(stmt.order_by(OptOut.id.desc()).offset(max(offset, 0)).limit(limit)))
    return OptOutPage(items, total)


CURSOR_PREFIX = "o"


@dataclass
class OptOutKeysetPage:
    items: list[OptOut]
    next_cursor: str | None


def page_opt_outs(
    tenant: Tenant, *, phone: Any = None, q: str | None = None, cursor: str | None = None, limit: int = 50
) -> OptOutKeysetPage:
    """The tenant's list, newest first, in keyset pages (the API); `phone` narrows to that number (Invalid when
    it is not one), `q` to numbers containing its digits."""
    stmt = OptOut.scoped(tenant.id)
    if phone is not None:
        stmt = stmt.where(OptOut.chat_id == _chat_id(phone))
    digits = "".join(ch for ch in (q or "") if ch.isdigit())
    if digits:
        stmt = stmt.where(OptOut.chat_id.contains(digits))
    items, next_cursor = id_page(db.session, stmt, OptOut.id, cursor, CURSOR_PREFIX, limit)
    return OptOutKeysetPage(items, next_cursor)


@dataclass
class ImportResult:
    added: int
    already: int
    errors: list[tuple[int, str]]  # (line, reason)
    repeated: int = 0  # rows naming a number an earlier row of the file named


def import_csv(tenant: Tenant, actor: Actor, content: bytes) -> ImportResult:
    """Add the numbers of a CSV (a `phone` column, or the first column when there is no header) in one
    transaction; rows that are not valid numbers are reported by line. Audited as opt_out.import."""
    if len(content) > IMPORT_MAX_BYTES:
        raise Invalid.field(
            "file",
            N_f("The file may be at most %(IMPORT_MAX_BYTES)s MB.", IMPORT_MAX_BYTES=IMPORT_MAX_BYTES // (1024 * 1024)),
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid.field("file", N_("The file is not UTF-8 text.")) from None
    rows = list(csv_rows(text, "file"))
    if not rows:
        raise Invalid.field("file", N_("The file is empty."))
    header = [cell.strip().casefold() for cell in rows[0]]
    column, start = (header.index("phone"), 1) if "phone" in header else (0, 0)
    wanted: dict[str, int] = {}
    errors: list[tuple[int, str]] = []
    repeated = 0
    for line, row in enumerate(rows[start:], start=start + 1):
        raw = row[column].strip() if len(row) > column else ""
        if not raw:
            errors.append((line, N_("missing phone")))
            continue
        try:
            chat_id = normalize_recipient(raw)
        except Invalid:
            errors.append((line, N_("invalid phone")))
            continue
        if chat_id in wanted:
            repeated += 1
        else:
            wanted[chat_id] = line
    known = opted_out_among(tenant.id, wanted)
    new = [chat_id for chat_id in wanted if chat_id not in known]
    db.session.add_all(OptOut(tenant_id=tenant.id, chat_id=c, source="import", created_by=actor.label) for c in new)
    audit.record(
        tenant.id,
        "opt_out.import",
        actor,
        target_type="tenant",
        target_id=tenant.id,
        details={"added": len(new), "already": len(known), "repeated": repeated, "errors": len(errors)},
    )
    db.session.commit()
    return ImportResult(len(new), len(known), errors, repeated)


OVERRIDE_ROLES = ("owner", "admin")


def check_override(tenant_id: int, kind: str, actor_id: str, role: str | None) -> None:
    """Forbidden unless the caller may send to a number on the list: an owner or admin (a member's role; a
    JWT's role claim; for an API token, the role of the member who created it). Asked only when a send asks to
    override, so ordinary sends cost nothing."""
    if kind == "token":
        stmt = (
            select(Membership.role)
            .join(ApiToken, ApiToken.created_by_id == Membership.user_id)
            .where(ApiToken.id == int(actor_id), Membership.tenant_id == tenant_id)
        )
        role = db.session.scalar(stmt)
    elif kind == "user":
        stmt = select(Membership.role).where(Membership.user_id == int(actor_id), Membership.tenant_id == tenant_id)
        role = db.session.scalar(stmt)
    if role not in OVERRIDE_ROLES:
        raise Forbidden(
            N_("Only an owner or admin may send to a number on the opt-out list."), code="opt_out_override_forbidden"
        )


# ---------------------------------------------------------------------------------------------- inbound keywords

OPT_OUT_ACTOR = Actor(type="waha", label="opt-out keyword")


@dataclass(frozen=True)
class Confirmation:
    opt_out_id: int
    tenant_id: int
    session_id: str
    chat_id: str
    text: str


def from_inbound(messages: Iterable[Message]) -> list[Confirmation]:
    """Put the senders of new inbound messages that are an opt-out keyword on their tenant's list, in the
    caller's transaction (event processing); returns the confirmation replies to send once it commits."""
    candidates = [m for m in messages if m.direction == "in" and isinstance(m.body, str) and len(m.body) <= 200]
    if not candidates:
        return []
    settings: dict[int, Settings] = {}
    matched: dict[tuple[int, str], Message] = {}
    for message in candidates:
        tenant_settings = settings.get(message.tenant_id)
        if tenant_settings is None:
            tenant_settings = settings[message.tenant_id] = settings_for(message.tenant_id)
        keywords = {normalize(k) for k in tenant_settings.keywords}
        if normalize(message.body or "") in keywords and "@" in message.chat_id:
            matched.setdefault((message.tenant_id, message.chat_id), message)
    confirmations = []
    for (tenant_id, chat_id), message in matched.items():
        if is_opted_out(tenant_id, chat_id):
            continue
        try:
            with db.session.begin_nested():  # another batch may list the same number at the same moment
                row = OptOut(tenant_id=tenant_id, chat_id=chat_id, source="keyword", created_by="keyword")
                db.session.add(row)
                db.session.flush()
        except IntegrityError:
            continue
        audit.record(
            tenant_id,
            "opt_out.add",
            OPT_OUT_ACTOR,
            target_type="opt_out",
            target_id=chat_id,
            details={"source": "keyword", "session_id": message.session_id},
        )
        tenant_settings = settings[tenant_id]
        if tenant_settings.confirm:
            confirmations.append(
                Confirmation(row.id, tenant_id, message.session_id, chat_id, tenant_settings.confirm_text)
            )
    return confirmations


def queue_confirmations(confirmations: list[Confirmation]) -> None:
    """Queue the confirmation replies of freshly listed numbers (after the listing committed)."""
    from portal import queue

    for c in confirmations:
        queue.enqueue(queue.JOB_CONFIRM_OPT_OUT, c.opt_out_id, c.session_id, c.text)


def send_confirmation(opt_out_id: int, session_id: str, text: str) -> None:
    """Send the confirmation reply to a listed number once (the opt-out's id makes the send idempotent); a
    session that cannot send now is logged and skipped: the number is listed either way."""
    from portal.services import messages
    from portal.services.errors import ServiceError

    row = db.session.get(OptOut, opt_out_id)
    tenant = db.session.get(Tenant, row.tenant_id) if row is not None else None
    if row is None or tenant is None:
        return
    try:
        messages.send_message(
            tenant,
            session_id,
            OPT_OUT_ACTOR,
            to=row.chat_id,
            text=text,
            idempotency_key=f"opt-out-confirm-{row.id}",
            source="portal",
            ignore_opt_out=True,
        )
    except ServiceError as exc:
        db.session.rollback()
        log.warning("opt-out confirmation to %s not sent: %s", row.chat_id, exc.code)
