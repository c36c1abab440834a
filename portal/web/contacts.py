"""The contacts page: the people the tenant talks to (name by the display rule, number, LID, picture, first and
last message, tags), searched by name or number in keyset pages, each linked to its chat in the inbox. Members
who may send edit the tags; admins and operators import names from WhatsApp per WORKING session (a job)."""

from __future__ import annotations

from flask import Blueprint, flash, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from portal.i18n import gettext as _
from portal.i18n import translated
from portal.services import avatars, contacts_sync
from portal.services import contacts as contacts_service
from portal.services import sessions as sessions_service
from portal.services.errors import Invalid, ServiceError
from portal.tenancy import require
from portal.web.forms import ConfirmForm, ContactTagsForm
from portal.web.helpers import page, principal, redirect_to
from portal.web.wording import say_exc

bp = Blueprint("contacts", __name__, url_prefix="/contacts")
READ = "messages:read"
EDIT_TAGS = "messages:send"
SYNC = "sessions:write"


@bp.get("/")
@login_required
@require(READ)
def index() -> ResponseReturnValue:
    who = principal()
    q = (request.args.get("q") or "").strip() or None
    cursor = request.args.get("cursor") or None
    error = None
    try:
        entries, next_cursor = contacts_service.browse_contacts(who.tenant, q=q, cursor=cursor)
    except Invalid as exc:
        entries, next_cursor, error = [], None, translated(exc.message)
    sessions = sessions_service.list_sessions(who.tenant) if who.can(SYNC) else []
    return page(
        "contacts/index.html",
        400 if error else 200,
        q=q,
        entries=entries,
        error=error,
        first_page=cursor is None,
        next_url=url_for("contacts.index", q=q, cursor=next_cursor) if next_cursor else None,
        sessions=[s for s in sessions if s.status == "WORKING"],
        tags_form=ContactTagsForm(formdata=None) if who.can(EDIT_TAGS) else None,
        sync_form=ConfirmForm(formdata=None),
        avatar_url=lambda contact: avatars.avatar_url(contact, "inbox.avatar"),
    )


@bp.post("/<int(big=True):contact_id>/tags")
@login_required
@require(EDIT_TAGS)
def tags(contact_id: int) -> ResponseReturnValue:
    who = principal()
    form = ContactTagsForm()
    back = url_for("contacts.index", q=form.q.data or None, _anchor=f"contact-{contact_id}")
    if not form.validate_on_submit():
        flash(_("The tags could not be read; write them separated by commas."), "error")
        return redirect_to(back)
    wanted = (form.tags.data or "").split(",")
    try:
        contact = contacts_service.set_tags(who.tenant, contact_id, who.actor(), wanted)
    except Invalid as exc:
        flash(translated(exc.message), "error")
        return redirect_to(back)
    flash(_("Tags of %(name_of)s saved.", name_of=contacts_service.name_of(contact)), "success")
    return redirect_to(back)


@bp.post("/sync/<session_id>")
@login_required
@require(SYNC)
def sync(session_id: str) -> ResponseReturnValue:
    who = principal()
    try:
        session = contacts_sync.request_sync(who.tenant, session_id, who.actor())
    except ServiceError as exc:
        if exc.status == 404:
            raise
        flash(say_exc(exc), "error")
    else:
        flash(
            _(
                "Reading the contacts of “%(name)s” from WhatsApp: their names appear here in a moment.",
                name=session.name,
            ),
            "info",
        )
    return redirect_to(url_for("contacts.index"))
