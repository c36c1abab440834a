"""The team panel of an open chat (templates/inbox/_team.html): who it is assigned to, open or resolved, and
the team's internal notes; its forms, and what the panel shows to whom.

Reading needs messages:read (every role); resolving, reopening and writing notes messages:send; assigning
(to anyone, or "Take" for oneself) chats:manage, as on the API. The thread pane includes the panel with only the
chat in hand, so the panel loads the rest itself (`panel`, a template global of the `inbox` blueprint).
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, Optional, Regexp

from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.models import Chat
from portal.services import inbox
from portal.tenancy import Principal
from portal.web.inbox_list import members_by_id, user_id_of

SEND = "messages:send"
MANAGE = "chats:manage"
NOTES_SHOWN = 20


class AssignForm(FlaskForm):
    assignee = SelectField(_l("Assigned to"), validators=[Optional()], validate_choice=False)


class TakeForm(FlaskForm):
    assignee = HiddenField(validators=[DataRequired(), Regexp(r"^\d{1,18}$")])


class StatusForm(FlaskForm):
    status = HiddenField(validators=[AnyOf(("open", "resolved"), message=_l("Choose open or resolved."))])


class NoteForm(FlaskForm):
    body = TextAreaField(
        _l("Internal note"),
        validators=[
            DataRequired(message=_l("Write the note.")),
            Length(
                max=inbox.NOTE_MAX,
                message=_l("A note must be at most %(NOTE_MAX)s characters.", NOTE_MAX=inbox.NOTE_MAX),
            ),
        ],
        render_kw={"data-limit": inbox.NOTE_MAX, "rows": 3},
        id="note-body",
    )


def assignee_of(form: AssignForm | TakeForm) -> int | None:
    """The member the form names (None: nobody); a value that is no user id is refused by the service."""
    raw = (form.assignee.data or "").strip()
    return int(raw) if raw.isascii() and raw.isdecimal() and len(raw) < 19 else (None if raw == "" else -1)


def chat_of(value: Any) -> Chat:
    """The chat row, whether the thread pane hands over the row or the service's ChatItem."""
    return value.chat if isinstance(value, inbox.ChatItem) else value


def panel(who: Principal, value: Any, *, note_form: NoteForm | None = None, error: str | None = None) -> dict[str, Any]:
    """What templates/inbox/_team.html shows for `who` about the chat `value`."""
    chat = chat_of(value)
    tenant = who.tenant
    members = members_by_id(tenant)
    me = user_id_of(who)
    can_assign = who.can(MANAGE)
    assign_form = None
    if can_assign:
        assign_form = AssignForm(formdata=None, assignee=str(chat.assignee_id or ""))
        assign_form.assignee.choices = [("", _("Nobody"))] + [(str(uid), label) for uid, label in members.items()]
    notes = inbox.list_notes(tenant, chat.session_id, chat.chat_id, limit=NOTES_SHOWN)
    return {
        "chat": chat,
        "assignee": members.get(chat.assignee_id) if chat.assignee_id is not None else None,
        "mine": me is not None and chat.assignee_id == me,
        "me": me,
        "can_act": who.can(SEND),
        "can_assign": can_assign,
        "assign_form": assign_form,
        "take_form": TakeForm(formdata=None, assignee=str(me)) if can_assign and me is not None else None,
        "status_form": StatusForm(formdata=None, status="open" if chat.status == "resolved" else "resolved"),
        "note_form": note_form or NoteForm(formdata=None),
        "notes": notes.items,
        "more_notes": notes.next_cursor is not None,
        "authors": members,
        "error": error,
    }
