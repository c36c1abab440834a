"""Reading a tenant's messages: one message, the log in keyset pages (cursors: portal.pagination), the chats of a
session; and the log as a person watching it sees it (which page is live, what refreshes, when the polling
stops), as the session page's live block is in `services.sessions.watch`. A conversation is read in the inbox
(`services.inbox.thread`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, Integer, bindparam, func, select, tuple_
from sqlalchemy.orm import aliased

from portal import pagination
from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import STATUS_RANK, Message, Tenant, get_for_tenant, utcnow
from portal.services.errors import Invalid, NotFound
from portal.services.sessions import get_session

PAGE_MAX = 200
Q_MAX = 200


@dataclass(frozen=True)
class MessagePage:
    """One page of messages, newest first; pass `next_cursor` back to get the next page (None on the last)."""

    items: list[Message]
    next_cursor: str | None


@dataclass(frozen=True)
class ChatSummary:
    """A conversation of a session: its chat id, newest message, number of messages and when it was last active."""

    chat_id: str
    last_message: Message
    count: int
    last_at: datetime


def get_message(tenant: Tenant, message_id: Any) -> Message:
    """One of the tenant's messages; NotFound("message_not_found") for unknown ids and other tenants' ids."""
    message = get_for_tenant(db.session, Message, tenant.id, message_id)
    if message is None:
        raise NotFound(N_("No such message."), code="message_not_found")
    return message


def encode_cursor(message: Message) -> str:
    """Opaque cursor pointing just after `message` in (created_at, id) descending order (portal.pagination)."""
    return pagination.encode_time_id(message.created_at, message.id)


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """(created_at, id) from a cursor; Invalid(field "cursor") when it was not made by encode_cursor."""
    return pagination.decode_time_id(cursor)


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise Invalid.field(field, N_("Must be a date and time."))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class LogRow(NamedTuple):
    """What the message log shows of a message (portal/web/log_rows.py), read without loading the whole row."""

    id: int
    created_at: datetime
    session_id: str
    direction: str
    chat_id: str
    body: str | None
    media: dict[str, Any] | None
    status: str
    error: str | None
    edited_at: datetime | None
    revoked_at: datetime | None


@functools.lru_cache(maxsize=256)
def _page_statement(log_columns: bool, by_session: bool, *filters: str) -> Any:
    """The statement of one shape of page (which filters are set, whether a cursor is): built once per process with
    bound parameters, so a page costs no statement building (SQLAlchemy also keeps its cache key)."""
    what: Any = select(*(getattr(Message, name) for name in LogRow._fields)) if log_columns else select(Message)
    if by_session:
        stmt = what.where(Message.session_id == bindparam("session_id", type_=Message.session_id.type))
    else:
        stmt = what.where(Message.tenant_id == bindparam("tenant_id", type_=Message.tenant_id.type))
    at, text = Message.created_at.type, Message.body.type
    for name in filters:
        if name == "q":
            # The pattern goes into the SQL as a literal, not a parameter: PostgreSQL then weighs each search by
            # its own text (a rare word through the trigram index, a common one while walking the newest rows),
            # also once the driver prepares the statement, where a parameter would get one generic plan for all.
            pattern: BindParameter[str] = bindparam("q_pattern", type_=text, literal_execute=True)
            stmt = stmt.where(Message.body.ilike(pattern, escape="\\"))
        elif name == "since":
            stmt = stmt.where(Message.created_at >= bindparam("since", type_=at))
        elif name == "until":
            stmt = stmt.where(Message.created_at < bindparam("until", type_=at))
        elif name == "cursor":
            after = tuple_(bindparam("cursor_at", type_=at), bindparam("cursor_id", type_=Message.id.type))
            stmt = stmt.where(tuple_(Message.created_at, Message.id) < after)
        else:  # direction, status, chat_id: equality
            column = getattr(Message, name)
            stmt = stmt.where(column == bindparam(name, type_=column.type))
    return stmt.order_by(Message.created_at.desc(), Message.id.desc()).limit(bindparam("row_limit", type_=Integer))


@dataclass(frozen=True)
class LogQuery:
    """The log's filters checked and turned into the parameters of `log_statement` (without the limit)."""

    params: dict[str, Any]
    filters: tuple[str, ...]
    by_session: bool


def log_query(
    tenant: Tenant,
    *,
    session_id: str | None = None,
    direction: str | None = None,
    status: str | None = None,
    chat_id: str | None = None,
    q: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> LogQuery:
    """Check the log's filters as `list_messages` takes them (Invalid for a bad one; NotFound for a session that is
    not the tenant's) and turn them into statement parameters: the page and the CSV export read the same rows."""
    params: dict[str, Any] = {}
    filters: list[str] = []
    if session_id is not None:
        # The session is checked against the tenant first (another tenant's is a 404, not an empty list). Its
        # rows are then selected by session alone: adding tenant_id = ... makes PostgreSQL multiply two
        # correlated selectivities, misjudge the row count and sort instead of walking the session index.
        params["session_id"] = get_session(tenant, session_id).id
    else:
        params["tenant_id"] = tenant.id
    if direction is not None:
        if direction not in ("in", "out"):
            raise Invalid.field("direction", N_('Direction must be "in" or "out".'))
        filters.append("direction")
        params["direction"] = direction
    if status is not None:
        if status not in STATUS_RANK:
            raise Invalid.field("status", N_f("Status must be one of %(value)s.", value=", ".join(STATUS_RANK)))
        filters.append("status")
        params["status"] = status
    if chat_id:
        filters.append("chat_id")
        params["chat_id"] = chat_id
    if q:
        if len(q) > Q_MAX:
            raise Invalid.field("q", N_f("The search text must be at most %(Q_MAX)s characters.", Q_MAX=Q_MAX))
        filters.append("q")
        params["q_pattern"] = _like_pattern(q)
    since, until = _aware(since, "since"), _aware(until, "until")
    if since is not None:
        filters.append("since")
        params["since"] = since
    if until is not None:
        filters.append("until")
        params["until"] = until
    return LogQuery(params=params, filters=tuple(filters), by_session=session_id is not None)


def log_statement(query: LogQuery, *, after: bool = False) -> Any:
    """The log's statement (LogRow columns, newest first, at most `row_limit` rows) for `query`; `after` adds the
    keyset condition "older than (cursor_at, cursor_id)"."""
    return _page_statement(True, query.by_session, *query.filters, *(("cursor",) if after else ()))


def list_messages(
    tenant: Tenant,
    *,
    session_id: str | None = None,
    direction: str | None = None,
    status: str | None = None,
    chat_id: str | None = None,
    q: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
    rows_as: type[LogRow] | None = None,
) -> MessagePage:
    """A page of the tenant's messages (or one session's), newest first, with keyset pagination.

    Filters: direction ("in"/"out"), status, chat id, `q` (case-insensitive substring of the text),
    created_at in [since, until). The order is (created_at, id) descending, served by the
    (tenant, created_at, id) and (session, created_at, id) indexes, so page 1,000 costs what page 1 costs.
    `rows_as=LogRow` reads only the columns the log shows: the items are then LogRow tuples, which cost a
    fraction of whole Message objects to load.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= PAGE_MAX:
        raise Invalid.field("limit", N_f("Limit must be between 1 and %(PAGE_MAX)s.", PAGE_MAX=PAGE_MAX))
    query = log_query(
        tenant,
        session_id=session_id,
        direction=direction,
        status=status,
        chat_id=chat_id,
        q=q,
        since=since,
        until=until,
    )
    params, filters = {**query.params, "row_limit": limit + 1}, list(query.filters)
    if cursor:
        params["cursor_at"], params["cursor_id"] = decode_cursor(cursor)
        filters.append("cursor")
    stmt = _page_statement(rows_as is not None, query.by_session, *filters)
    rows: list[Any]
    if rows_as is not None:
        rows = [rows_as._make(row) for row in db.session.connection().execute(stmt, params)]
    else:
        rows = list(db.session.scalars(stmt, params))
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
    return MessagePage(items=items, next_cursor=next_cursor)


def list_chats(tenant: Tenant, session_id: str, *, limit: int = 100) -> list[ChatSummary]:
    """The session's conversations, most recently active first: chat id, newest message and message count.

    One query: counts per chat come from the (session, chat, created_at, id) index, and each listed chat's
    newest message is a top-1 lookup in the same index (a window over every row was 3x slower on 100,000).
    """
    session = get_session(tenant, session_id)
    per_chat = (
        select(
            Message.chat_id.label("chat_id"), func.count().label("total"), func.max(Message.created_at).label("last_at")
        )
        .where(Message.session_id == session.id)
        .group_by(Message.chat_id)
        .order_by(func.max(Message.created_at).desc())
        .limit(limit)
        .subquery("per_chat")
    )
    newest = aliased(Message)
    last_id = (
        select(newest.id)
        .where(newest.session_id == session.id, newest.chat_id == per_chat.c.chat_id)
        .order_by(newest.created_at.desc(), newest.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    chats = select(per_chat.c.total, per_chat.c.last_at, last_id.label("last_id")).subquery("chats")
    stmt = (
        select(Message, chats.c.total)
        .join(chats, Message.id == chats.c.last_id)
        .order_by(chats.c.last_at.desc(), Message.id.desc())
    )
    return [
        ChatSummary(chat_id=message.chat_id, last_message=message, count=int(total), last_at=message.created_at)
        for message, total in db.session.execute(stmt)
    ]


# ---- the log as a person watching it sees it ------------------------------------------------------------------

LOG_PAGE = 50
POLL_SECONDS = 3
# Statuses an outbound message may still leave; while one is on screen the ticks refresh themselves.
IN_FLIGHT = ("PENDING", "SERVER", "DEVICE")
# Receipts rarely arrive after this long; older unread messages do not keep a page polling forever.
TICK_WINDOW = timedelta(hours=1)
# The newest page of the log keeps a "fresh" block that re-reads, every few seconds, the
# rows created since a moment fixed when the page loaded: new messages appear and recent ticks move on with one
# keyset query. The moment lies a little before the newest row shown, so a row committed a bit after a newer
# one is not missed.
FRESH_OVERLAP = timedelta(seconds=30)
FRESH_LIMIT = 200


@dataclass(frozen=True)
class LogFilters:
    """The message log's filters; None leaves one out."""

    session_id: str | None = None
    direction: str | None = None
    status: str | None = None
    chat_id: str | None = None
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> dict[str, Any]:
        """The filters as `list_messages` takes them."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def any(self) -> bool:
        """True when at least one filter narrows the log."""
        return any(self.query().values())


@dataclass(frozen=True)
class LiveView:
    """A page of the log (newest first) as a person watching it sees it.

    The newest page keeps a fresh block (`live`) that re-reads the rows created since `fresh_since` every
    POLL_SECONDS; `fresh_items` start it and `settled_items` are the rest, both in the page's order. An older
    page re-reads itself while a tick on it may still change (`polling`); once neither is true the page stays
    still (`keeps_polling`)."""

    items: list[Message]
    next_cursor: str | None
    cursor: str | None  # the page shown: None for the newest, also when the cursor asked for was refused
    newest: bool  # the page new rows join: the newest, with dates that can still include them
    live: bool
    fresh_since: datetime
    fresh_items: list[Message]
    settled_items: list[Message]
    polling: bool
    settled: bool = True  # the page shows what was asked for
    stale_cursor: bool = False  # an edited or mangled page link: the newest page is shown instead
    refusal: str | None = None  # a filter the log refused: nothing is shown

    @property
    def keeps_polling(self) -> bool:
        """False once nothing on the page can change any more (htmx may stop asking)."""
        return self.polling or self.live


@dataclass(frozen=True)
class FreshRows:
    """A fresh block's rows; `overflow` when there were more than FRESH_LIMIT (the page should be reloaded)."""

    items: list[Message]
    overflow: bool


def in_flight(messages: list[Message], now: datetime | None = None) -> bool:
    """True while a recent outbound message on screen may still get a newer tick."""
    horizon = (now or utcnow()) - TICK_WINDOW
    return any(m.direction == "out" and m.status in IN_FLIGHT and m.created_at >= horizon for m in messages)


def fresh_since(messages: list[Message], now: datetime | None = None) -> datetime:
    """Where a page's fresh block starts: before the newest message shown and before every recent message still
    waiting for a tick, so both new rows and newer ticks show up in it."""
    now = now or utcnow()
    horizon = now - TICK_WINDOW
    newest = max((m.created_at for m in messages), default=now)
    waiting = [
        m.created_at for m in messages if m.direction == "out" and m.status in IN_FLIGHT and m.created_at >= horizon
    ]
    return min([newest, *waiting]) - FRESH_OVERLAP


def watch_log(tenant: Tenant, filters: LogFilters, *, cursor: str | None, settled: bool = True) -> LiveView:
    """The message log's page at `cursor` (None: the newest) as its watcher sees it, newest first.

    `settled` is False when the filters asked for could not be read: the page then stays still. A cursor
    `list_messages` refuses shows the newest page (`stale_cursor`), a filter it refuses an empty one
    (`refusal`); both leave the page still, so the person sees what happened."""
    stale_cursor, refusal = False, None
    try:
        page = list_messages(tenant, cursor=cursor, limit=LOG_PAGE, rows_as=LogRow, **filters.query())
    except Invalid as exc:
        if "cursor" in [item.get("field") for item in exc.details.get("fields", [])]:
            stale_cursor = True
            page = list_messages(tenant, limit=LOG_PAGE, rows_as=LogRow, **filters.query())
        else:
            refusal = exc.message
            page = MessagePage(items=[], next_cursor=None)
        cursor, settled = None, False
    now = utcnow()
    newest = settled and cursor is None and (filters.until is None or filters.until > now)
    boundary = fresh_since(page.items, now)
    fresh_items = [m for m in page.items if m.created_at >= boundary] if newest else []
    return LiveView(
        items=page.items,
        next_cursor=page.next_cursor,
        cursor=cursor,
        newest=newest,
        # An empty newest page has no fresh block: it polls as a whole until its first row arrives.
        live=newest and bool(page.items),
        fresh_since=boundary,
        fresh_items=fresh_items,
        settled_items=page.items[len(fresh_items) :],
        polling=settled and ((newest and not page.items) or (cursor is not None and in_flight(page.items))),
        settled=settled,
        stale_cursor=stale_cursor,
        refusal=refusal,
    )


def watch_log_fresh(tenant: Tenant, filters: LogFilters, since: datetime) -> FreshRows:
    """The log's fresh block: every row (with the log's filters) created since `since`, newest first."""
    since = max(since, filters.since) if filters.since else since
    found = list_messages(tenant, **{**filters.query(), "since": since}, limit=FRESH_LIMIT, rows_as=LogRow)
    return FreshRows(items=found.items, overflow=found.next_cursor is not None)
