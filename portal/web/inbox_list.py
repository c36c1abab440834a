"""The inbox's chat list as the page shows it: filters read from the query, a page of rows with what each row
needs (session, assignee, avatar, initials), the version that tells the live poll whether anything changed, and
the short times of the rows.

The rules (which chats a tab holds, keyset pages, the display name) are services.inbox's; this module only
arranges their answers for the templates of the `inbox` blueprint.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, request, url_for
from flask_babel import format_date, format_time, to_user_timezone

from portal.converters import parse_id
from portal.i18n import gettext as _
from portal.models import Tenant, WahaSession, utcnow
from portal.services import avatars, inbox
from portal.services import sessions as sessions_service
from portal.services import team as team_service
from portal.tenancy import Principal

PAGE = 30  # rows per page of the list
SHOWN_MAX = 200  # the live poll refreshes at most this many rows (the service's page limit)
AVATAR_COLOURS = 8  # avatar-c0 .. avatar-c7 in static/css/inbox.css
LIST_ARGS = ("view", "session", "q")  # the filters, kept by every link of the page


@dataclass(frozen=True)
class ListQuery:
    """The list's filters as the query gives them (`chat`: the open chat's row id, or None)."""

    view: str = "all"
    session: str | None = None
    q: str | None = None
    chat: int | None = None

    def args(self, **extra: Any) -> dict[str, Any]:
        """The query arguments of a link that keeps these filters (url_for leaves out the None ones)."""
        merged = {"view": self.view, "session": self.session, "q": self.q, **extra}
        if merged["view"] == "all":
            merged["view"] = None
        return merged


@dataclass
class ListPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    version: str
    sessions: list[WahaSession] = field(default_factory=list)


def read_query() -> ListQuery:
    """The filters of this request (unknown tabs and bad searches are refused by the service)."""
    return ListQuery(
        view=request.args.get("view") or "all",
        session=request.args.get("session") or None,
        q=(request.args.get("q") or "").strip() or None,
        chat=parse_id(request.args.get("chat"), big=True),
    )


def user_id_of(who: Principal) -> int | None:
    return parse_id(who.actor_id) if who.kind == "user" else None


def initials(name: str) -> str:
    """One or two letters for the avatar circle: the first letters of the first two words, "#" for a number."""
    letters = [word[0] for word in name.split() if word[:1].isalpha()]
    return "".join(letters[:2]).upper() or "#"


def colour(chat_id: str) -> int:
    """A stable colour of the avatar circle for a chat (the same in every list and every process)."""
    return zlib.crc32(chat_id.encode()) % AVATAR_COLOURS


def short_time(at: datetime | None, now: datetime | None = None) -> str:
    """How the list says when, in the reader's language and time zone: "now", "5 min", a time today, a weekday
    this week, a date otherwise."""
    if at is None:
        return ""
    now = now or utcnow()
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    age = now - at
    if age < timedelta(minutes=1):
        return _("now")
    if age < timedelta(hours=1):
        return _("%(num)s min", num=int(age.total_seconds() // 60))
    local, local_now = to_user_timezone(at), to_user_timezone(now)
    if local.date() == local_now.date():
        return str(format_time(at, "short"))
    if age < timedelta(days=6):
        return str(format_date(local, "EEE", rebase=False))
    return str(format_date(local, "d MMM" if local.year == local_now.year else "d MMM y", rebase=False))


def members_by_id(tenant: Tenant) -> dict[int, str]:
    """The tenant's members as the inbox names them (name, else email), by user id."""
    return {m.user_id: (m.user.name or m.user.email) for m in team_service.list_members(tenant)}


def _row(item: inbox.ChatItem, sessions: dict[str, WahaSession], members: dict[int, str]) -> dict[str, Any]:
    chat = item.chat
    session = sessions.get(chat.session_id)
    return {
        "chat": chat,
        "name": item.name,
        "initials": initials(item.name),
        "colour": colour(chat.chat_id),
        "avatar": avatars.avatar_url(item.contact, "inbox.avatar"),
        "session": session.name if session is not None else "",
        "assignee": members.get(chat.assignee_id) if chat.assignee_id is not None else None,
        "ticks": {"direction": "out", "status": chat.last_status} if chat.last_from_me and chat.last_status else None,
        "when": short_time(chat.last_activity_at),
    }


def _version(items: list[inbox.ChatItem], next_cursor: str | None) -> str:
    """What the rows show, in a few characters: the poll swaps the list only when this changes."""
    digest = hashlib.sha1(usedforsecurity=False)
    for item in items:
        chat = item.chat
        digest.update(f"{chat.id}:{chat.updated_at.isoformat()}:{chat.last_activity_at.isoformat()};".encode())
    digest.update((next_cursor or "").encode())
    # the short times ("5 min") age too: a new minute is a change
    digest.update(utcnow().strftime("%Y%m%d%H%M").encode())
    return digest.hexdigest()[:16]


def load_page(who: Principal, query: ListQuery, *, cursor: str | None = None, limit: int = PAGE) -> ListPage:
    """A page of the list for `who` with the filters of `query`."""
    tenant = who.tenant
    filters = inbox.filters_for_view(query.view, user_id_of(who), session_id=query.session, q=query.q)
    found = inbox.list_chats(tenant, filters, cursor=cursor, limit=limit)
    sessions = sessions_service.list_sessions(tenant)
    by_id = {s.id: s for s in sessions}
    members = members_by_id(tenant)
    return ListPage(
        rows=[_row(item, by_id, members) for item in found.items],
        next_cursor=found.next_cursor,
        version=_version(found.items, found.next_cursor),
        sessions=sessions,
    )


def shown_rows() -> int:
    """How many rows the page shows now (the live poll sends it): the refresh keeps the pages loaded since."""
    raw = request.args.get("shown", "")
    shown = int(raw) if raw.isascii() and raw.isdecimal() and len(raw) < 5 else PAGE
    return max(PAGE, min(shown, SHOWN_MAX))


def list_urls(query: ListQuery, page: ListPage) -> dict[str, Any]:
    """The URLs of the list fragment: its live poll (carrying the version) and the next page."""
    return {
        "poll_url": url_for("inbox.list_fragment", **query.args(version=page.version)),
        "more_url": url_for("inbox.list_fragment", **query.args(cursor=page.next_cursor)) if page.next_cursor else None,
    }


def chat_urls(query: ListQuery, chat_id: int) -> dict[str, str | None]:
    """Where a row leads: the page with the chat open, and the thread fragment for htmx when the thread pane's
    blueprint is there."""
    show = "inbox_thread.show"
    return {
        "page": url_for("inbox.index", **query.args(chat=chat_id)),
        "pane": url_for(show, chat_id=chat_id) if show in current_app.view_functions else None,
    }
