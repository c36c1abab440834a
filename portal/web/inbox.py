"""The inbox: one page with the chat list on the left and the open chat on the right (one pane at a time on a
phone), the live list fragment, the header badge, the team panel's actions (assign, take, resolve, reopen,
notes), contact pictures and the composer's quick-reply picker.

The thread pane (messages and composer) is the `inbox_thread` blueprint's; this page renders its fragment from
`inbox_parts.thread_context` when a chat is open.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from sqlalchemy.exc import SQLAlchemyError

from portal.extensions import htmx
from portal.i18n import gettext as _
from portal.i18n import translated
from portal.models import Chat
from portal.services import avatars, inbox, quick_replies
from portal.services.errors import ServiceError
from portal.storage.serving import send_stored
from portal.tenancy import current_principal, require
from portal.web import inbox_list, inbox_parts
from portal.web.helpers import page, principal, reads_only, redirect_to
from portal.web.inbox_list import ListQuery, read_query
from portal.web.inbox_team import AssignForm, NoteForm, StatusForm, TakeForm, assignee_of, panel

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
log = logging.getLogger(__name__)
READ = "messages:read"
BADGE_SECONDS = 5


@bp.app_context_processor
def _globals() -> dict[str, Any]:
    return {"inbox_badge": _badge, "inbox_team": lambda chat: panel(principal(), chat)}


def _badge() -> int | None:
    """The header badge of the signed-in member: unread chats assigned to them or to nobody (None: no inbox)."""
    who = current_principal()
    if who is None or not who.can(READ):
        return None
    try:
        return inbox.badge_count(who.tenant, inbox_list.user_id_of(who))
    except SQLAlchemyError:  # every page shows the badge: an error page for a database outage must still render
        log.warning("inbox badge not counted", exc_info=True)
        return None


# ---- the page and the list ----------------------------------------------------------------------------------


def _list_context(query: ListQuery, found: inbox_list.ListPage) -> dict[str, Any]:
    return {"query": query, "list": found, "chat_urls": inbox_list.chat_urls, **inbox_list.list_urls(query, found)}


@bp.get("/")
@login_required
@require(READ)
def index() -> ResponseReturnValue:
    who = principal()
    query = read_query()
    found = inbox_list.load_page(who, query)
    chat = inbox.get_chat_by_id(who.tenant, query.chat) if query.chat is not None else None
    thread = inbox_parts.thread_context(who.tenant, chat.chat.id) if chat is not None else None
    return page(
        "inbox/index.html",
        **_list_context(query, found),
        chat=chat,
        thread=thread,
        views=inbox.VIEWS,
        back_url=url_for("inbox.index", **query.args()),
    )


@bp.get("/list")
@login_required
@require(READ)
def list_fragment() -> ResponseReturnValue:
    """The list for htmx: the next page (`cursor`), or the live refresh of the rows shown (204 when unchanged)."""
    who = principal()
    query = read_query()
    cursor = request.args.get("cursor") or None
    if cursor:
        found = inbox_list.load_page(who, query, cursor=cursor)
        return render_template("inbox/_more.html", **_list_context(query, found))
    found = inbox_list.load_page(who, query, limit=inbox_list.shown_rows())
    if request.args.get("version") == found.version:
        return Response(status=204)
    return render_template("inbox/_list.html", **_list_context(query, found))


@bp.get("/badge")
@reads_only
@login_required
@require(READ)
def badge() -> ResponseReturnValue:
    return render_template("inbox/_badge.html", count=_badge(), seconds=BADGE_SECONDS)


@bp.get("/avatars/<int(big=True):contact_id>")
@login_required
@require(READ)
def avatar(contact_id: int) -> ResponseReturnValue:
    stored = avatars.avatar_file(principal().tenant, contact_id)
    response = send_stored(
        stored, as_attachment=False, missing=avatars.avatar_gone(), cache_control="private, max-age=3600"
    )
    return response


# ---- the team panel -----------------------------------------------------------------------------------------


def _chat(chat_id: int) -> Chat:
    return inbox.get_chat_by_id(principal().tenant, chat_id).chat


def _panel_answer(chat: Chat, *, error: str | None = None, note_form: NoteForm | None = None) -> ResponseReturnValue:
    """The updated panel for htmx; for a plain form post, the page with the chat open (the problem flashed)."""
    if htmx:
        team = panel(principal(), chat, error=error, note_form=note_form)
        return render_template("inbox/_team.html", thread={"chat": chat}, team=team)
    if error:
        flash(error, "error")
    return redirect_to(url_for("inbox.index", chat=chat.id))


def _change(chat: Chat, **changes: Any) -> ResponseReturnValue:
    who = principal()
    try:
        chat = inbox.update_chat(who.tenant, chat.session_id, chat.chat_id, who.actor(), **changes).chat
    except ServiceError as exc:
        return _panel_answer(chat, error=translated(exc.message))
    return _panel_answer(chat)


@bp.post("/chats/<int(big=True):chat_id>/assign")
@login_required
@require("chats:manage")
def assign(chat_id: int) -> ResponseReturnValue:
    chat = _chat(chat_id)
    form: AssignForm | TakeForm = TakeForm() if "take" in request.form else AssignForm()
    if not form.validate_on_submit():
        return _panel_answer(chat, error=_("Choose a member of the team."))
    return _change(chat, assignee_id=assignee_of(form))


@bp.post("/chats/<int(big=True):chat_id>/status")
@login_required
@require("messages:send")
def status(chat_id: int) -> ResponseReturnValue:
    chat = _chat(chat_id)
    form = StatusForm()
    if not form.validate_on_submit():
        return _panel_answer(chat, error=_("Choose open or resolved."))
    return _change(chat, status=form.status.data)


@bp.post("/chats/<int(big=True):chat_id>/notes")
@login_required
@require("messages:send")
def notes(chat_id: int) -> ResponseReturnValue:
    who = principal()
    chat = _chat(chat_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return _panel_answer(
            chat, error=" ".join(str(e) for e in form.body.errors) or _("Write the note."), note_form=form
        )
    try:
        inbox.add_note(who.tenant, chat.session_id, chat.chat_id, who.actor(), form.body.data)
    except ServiceError as exc:
        return _panel_answer(chat, error=translated(exc.message), note_form=form)
    return _panel_answer(chat)


# ---- quick replies for the composer -------------------------------------------------------------------------


@bp.get("/quick-replies", endpoint="quick_replies")
@login_required
@require(READ)
def quick_replies_picker() -> ResponseReturnValue:
    """The composer's "/" picker: replies whose shortcut starts with `q`, their text filled in for `chat`."""
    who = principal()
    raw_chat = request.args.get("chat") or None
    item = inbox.get_chat_by_id(who.tenant, raw_chat) if raw_chat else None
    replies = [
        {
            "reply": reply,
            "text": quick_replies.render(
                reply.text, name=item.name if item else None, chat_id=item.chat.chat_id if item else None
            ),
        }
        for reply in quick_replies.find_replies(who.tenant, request.args.get("q"))
    ]
    return render_template("inbox/_quick_replies.html", replies=replies)
