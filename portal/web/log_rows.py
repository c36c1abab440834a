"""The message log's rows, made in Python and kept once made: the markup of one row of the log
(`messages/_log.html`); and the log's filter fields, kept once rendered.

A row built by Jinja macros cost six macro calls, two `url_for` and some twenty attribute lookups and escapes,
which made rendering most of the log page's CPU time (50 rows a page, re-read every few seconds by each viewer).
Here a row is one string: each value is escaped once, the session link is built once per session, the
conversation link once per session and completed with the chat id (quoted by the route's own converter), and the
ticks come from one table (which the inbox's `ticks` macro reads too). A row made once is kept per process under
everything it shows (`log_rows`), since viewers re-read the same rows every few seconds; values are escaped with
one `str.translate` each, as markupsafe escapes them.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from typing import Any

from flask import current_app, get_template_attribute, url_for
from flask_babel import format_decimal, get_locale, get_timezone
from jinja2.filters import do_truncate
from markupsafe import Markup, escape
from wtforms import Field, SelectField

from portal.i18n import datetime_filter
from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.web.wording import failed_send

# status -> (glyph, words) of an outbound message's ticks; the inbox's macro reads the same table
TICKS: dict[str, tuple[str, Any]] = {  # glyph, words (lazy: in the reader's language)
    "PENDING": ("…", _l("Waiting to be sent")),
    "SERVER": ("✓", _l("Sent")),
    "DEVICE": ("✓✓", _l("Delivered")),
    "READ": ("✓✓", _l("Read")),
    "PLAYED": ("✓✓", _l("Played")),
    "ERROR": ("!", _l("Failed")),
}
BODY_CHARS = 200
_PLACEHOLDER = "0"
# HTML escapes as markupsafe writes them, in one C call per value (no Markup object per cell).
_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"})
# A chat id in WhatsApp's usual spelling (digits, letters, "@", ".", "-", "_") reads the same in a URL path and
# in HTML: it needs neither quoting nor escaping.
_PLAIN_ID = re.compile(r"[A-Za-z0-9@._-]*")


def _text(value: str) -> str:
    """`value` escaped for HTML text or an attribute, exactly as markupsafe.escape does."""
    return value.translate(_HTML)


def chat_label(chat_id: str) -> str:
    """A chat id as people read it: +number for a person, "Group n" for a group, anything else as it is."""
    if chat_id.endswith("@c.us"):
        return "+" + chat_id[:-5]
    if chat_id.endswith("@g.us"):
        return _("Group %(chat_id)s", chat_id=chat_id[:-5])
    return chat_id


class _Links:
    """The log's links, one url_for per session instead of two per row."""

    def __init__(self, sessions_by_id: dict[str, Any]) -> None:
        self.sessions_by_id = sessions_by_id
        self.sessions: dict[str, tuple[str, str] | None] = {}
        self.chat_prefixes: dict[str, str] = {}
        self.quote = current_app.url_map.converters["default"](current_app.url_map).to_url

    def session_link(self, session_id: str) -> tuple[str, str] | None:
        """The two halves of the session cell's link (around the message id); None for a session not listed."""
        if session_id not in self.sessions:
            session = self.sessions_by_id.get(session_id)
            self.sessions[session_id] = None
            if session is not None:
                url = escape(url_for("sessions.detail", session_id=session.id))
                self.sessions[session_id] = ('<a id="m', f'-session" href="{url}">{escape(session.name)}</a>')
        return self.sessions[session_id]

    def session(self, message_id: int, session_id: str) -> str:
        """The session cell: a link to the session, or a dash when it is not among the tenant's sessions."""
        link = self.session_link(session_id)
        return "—" if link is None else f"{link[0]}{message_id}{link[1]}"

    def chat_prefix(self, session_id: str) -> str:
        """The address of the session's conversations, up to the chat id, escaped for an attribute."""
        prefix = self.chat_prefixes.get(session_id)
        if prefix is None:
            url = url_for("messages.conversation", session_id=session_id, chat_id=_PLACEHOLDER)
            prefix = self.chat_prefixes[session_id] = _text(url[: -len(_PLACEHOLDER)])
        return prefix

    def chat(self, session_id: str, chat_id: str) -> str:
        """The conversation's address, escaped for an attribute."""
        prefix = self.chat_prefix(session_id)
        if _PLAIN_ID.fullmatch(chat_id):
            return prefix + chat_id
        return prefix + _text(self.quote(chat_id))


def _media(m: Any) -> str:
    """The attachment's part of the message cell: a download link once the file is stored, else what became of it."""
    media = m.media or {}
    name = escape(media.get("filename") or media.get("kind") or _("Attachment"))
    status = media.get("status")
    if status == "stored":
        url = escape(url_for("messages.media", message_id=m.id))
        html = f'<a class="media-link" id="m{m.id}-media" href="{url}"><span aria-hidden="true">📎</span> {name}</a>'
    else:
        html = f'<span class="media-link"><span aria-hidden="true">📎</span> {name}</span>'
        if status == "pending":
            note = escape(_("(being fetched)"))  # (outside the f-string: pybabel reads no call inside one)
            html += f' <span class="muted small">{note}</span>'
        elif status in ("refused", "unavailable"):
            reason = escape(media.get("reason") or _("unavailable"))
            note = escape(_("(not kept: %(reason)s)", reason=reason))
            html += f' <span class="muted small">{note}</span>'
        elif m.direction == "out":
            size = media.get("size")
            sent = _("(sent, %(size)s KB)", size=format_decimal(size / 1024, format="#,##0.0")) if size else _("(sent)")
            html += f' <span class="muted small">{escape(sent)}</span>'
    if media.get("mimetype"):
        html += f' <span class="muted small">{escape(media["mimetype"])}</span>'
    return html


def _ticks_cell(direction: str, status: str) -> str:
    escaped = escape(status)
    if direction != "out":
        received = escape(_("Received"))
        return f'<span class="muted small" data-status="{escaped}">{received}</span>'
    glyph, words = TICKS.get(status, ("?", status))
    words = escape(str(words))
    return (
        f'<span class="ticks ticks-{escaped}" data-status="{escaped}" title="{words}"><span aria-hidden="true">'
        f'{glyph}</span><span class="visually-hidden">{words}</span></span>'
    )


# The status cell follows from (direction, status) alone: made once per pair a process meets.
_TICK_CELLS: dict[tuple[str, str, str], str] = {}


def _ticks(m: Any, language: str) -> str:
    key = (m.direction, m.status, language)
    cell = _TICK_CELLS.get(key)
    if cell is None:
        cell = _TICK_CELLS[key] = _ticks_cell(m.direction, m.status)
        if len(_TICK_CELLS) > 64:  # statuses come from a short list; anything else is not kept
            _TICK_CELLS.clear()
    return cell


def _direction(direction: str) -> str:
    if direction == "out":
        words = escape(_("Sent"))
        return f'<span class="dir dir-out" title="{words}"><span aria-hidden="true">↑</span> {words}</span>'
    words = escape(_("Received"))
    return f'<span class="dir dir-in" title="{words}"><span aria-hidden="true">↓</span> {words}</span>'


ROW_CACHE_SIZE = 2048
_rows: OrderedDict[tuple[Any, ...], Markup] = OrderedDict()


def log_rows(messages: list[Any], sessions_by_id: dict[str, Any]) -> Markup:
    """The log's rows (one <tr> each, joined) for `messages` (Message objects or LogRow tuples), in order.

    A row's markup follows from the message's shown columns and its session's link alone, so it is kept per
    process (at most ROW_CACHE_SIZE rows, the oldest dropped first) under all of them: the log re-reads the same
    rows every few seconds for each viewer, and a changed status, text, attachment or session name makes another
    key, never a stale row."""
    links = _Links(sessions_by_id)
    env = current_app.jinja_env
    view = (str(get_locale()), str(get_timezone()))  # rows are words and times for one language and zone
    rows = []
    for m in messages:
        session_id = m.session_id
        media = m.media
        key = (
            m.id,
            m.created_at,
            session_id,
            m.direction,
            m.chat_id,
            m.body,
            m.status,
            m.error,
            m.edited_at is not None,
            m.revoked_at is not None,
            json.dumps(media, sort_keys=True, default=str) if media else None,
            links.session_link(session_id),
            links.chat_prefix(session_id),
            view,
        )
        row = _rows.get(key)
        if row is None:
            row = _rows[key] = _row(m, links, env, view[0])
            if len(_rows) > ROW_CACHE_SIZE:
                _rows.popitem(last=False)
        rows.append(row)
    return Markup("".join(rows))


def _row(m: Any, links: _Links, env: Any, language: str) -> Markup:
    created = m.created_at.isoformat()  # the machine attribute; shown in the reader's language and time zone
    chat_id = m.chat_id
    chat_url = links.chat(m.session_id, chat_id)
    text = m.body
    if text:
        if len(text) > BODY_CHARS:
            text = do_truncate(env, text, BODY_CHARS)
        body = f'<span class="text">{_text(text)}</span>'
    else:
        body = ""
    media = _media(m) if m.media else ""
    if m.revoked_at is not None:  # deleted for everyone: the log keeps what was sent, marked
        marker = escape(_("deleted"))
        body += f' <span class="badge badge-deleted">{marker}</span>'
    elif m.edited_at is not None:
        marker = escape(_("edited"))
        body += f' <span class="badge">{marker}</span>'
    error = f'<p class="error small">{_text(failed_send(m.error))}</p>' if m.error else ""
    direction = "out" if m.direction == "out" else "in"
    ident = m.id
    return Markup(
        f'<tr id="message-{ident}" class="msg-{direction}">\n'
        f'<td><time datetime="{created}">{escape(datetime_filter(m.created_at))}</time></td>\n'
        f"<td>{links.session(ident, m.session_id)}</td>\n"
        f"<td>{_direction(direction)}</td>\n"
        f'<td><a id="m{ident}-chat" href="{chat_url}">{_text(chat_label(chat_id))}</a></td>\n'
        f'<td class="body">{body}\n{media}\n{error}</td>\n'
        f"<td>{_ticks(m, language)}</td>\n"
        "</tr>\n"
    )


# ---- the filter form ------------------------------------------------------------------------------------------

FIELD_CACHE_SIZE = 512
_fields: OrderedDict[tuple[Any, ...], Markup] = OrderedDict()


def filter_field(f: Field, help: str | None = None) -> Markup:
    """The `field` macro's markup for a filter of the log, kept per process for the same inputs.

    A field's markup follows from its definition, its value, choices and errors alone; WTForms rebuilds it through
    several layers of formatting on every view, which cost more than the log's 50 rows. Most views show the same
    filters (none, one session, a direction), so the rendered field is kept (at most FIELD_CACHE_SIZE of them)."""
    key = (
        str(get_locale()),
        type(f).__name__,
        f.id,
        f.name,
        str(f.label.text),
        f.data if isinstance(f, SelectField) else f._value(),
        repr(getattr(f, "choices", None)),
        tuple(str(e) for e in f.errors),
        repr(f.render_kw),
        help,
    )
    html = _fields.get(key)
    if html is None:
        html = get_template_attribute("_macros/forms.html", "field")(f, help=help)
        _fields[key] = html
        if len(_fields) > FIELD_CACHE_SIZE:
            _fields.popitem(last=False)
    return html
