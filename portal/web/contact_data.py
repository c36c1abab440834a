"""A contact's data page (/contacts/<id>/data): what the tenant holds about the person, the export of all of it as
a ZIP, and the erase after typing the number. Owners and admins only (contacts:privacy)."""

from __future__ import annotations

from flask import Blueprint, Response, flash, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from portal.i18n import gettext as _
from portal.services import contacts as contacts_service
from portal.services import privacy
from portal.tenancy import require
from portal.web.forms import EraseContactForm
from portal.web.helpers import page, principal, redirect_to

bp = Blueprint("contact_data", __name__, url_prefix="/contacts")
PRIVACY = "contacts:privacy"


def _typed_matches(typed: str, subject: privacy.Subject) -> bool:
    """Whether the number typed to confirm is the person's (written any way people write numbers)."""
    typed = (typed or "").strip()
    if subject.phone:
        digits = "".join(ch for ch in typed if ch.isdigit())
        return digits.removeprefix("00") == subject.phone if typed.startswith("00") else digits == subject.phone
    return typed == subject.chat_ids[0].split("@", 1)[0]


def _render(subject: privacy.Subject, form: EraseContactForm, status: int = 200) -> ResponseReturnValue:
    document = privacy.contact_document(subject)
    contact = subject.contact
    return page(
        "contacts/data.html",
        status,
        subject=subject,
        contact=contact,
        name=contacts_service.name_of(contact) if contact is not None else subject.label,
        number=contacts_service.format_number(f"{subject.phone}@c.us") if subject.phone else subject.label,
        document=document,
        messages=privacy.count_messages(subject),
        form=form,
    )


@bp.get("/<int(big=True):contact_id>/data")
@login_required
@require(PRIVACY)
def detail(contact_id: int) -> ResponseReturnValue:
    subject = privacy.by_contact(principal().tenant, contact_id)
    return _render(subject, EraseContactForm(formdata=None))


@bp.post("/<int(big=True):contact_id>/export")
@login_required
@require(PRIVACY)
def export(contact_id: int) -> ResponseReturnValue:
    who = principal()
    subject = privacy.by_contact(who.tenant, contact_id)
    form = EraseContactForm()
    if not form.csrf_token.validate(form):  # a POST: a download a page of another site cannot start
        flash(_("The form expired; try again."), "error")
        return redirect_to(url_for(".detail", contact_id=contact_id))
    path = privacy.export_contact(who.tenant, who.actor(), subject)
    response = Response(privacy.stream_file(path), mimetype="application/zip", direct_passthrough=True)
    name = subject.phone or f"contact-{contact_id}"
    response.headers["Content-Disposition"] = f'attachment; filename="contact-{name}.zip"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/<int(big=True):contact_id>/erase")
@login_required
@require(PRIVACY)
def erase(contact_id: int) -> ResponseReturnValue:
    who = principal()
    subject = privacy.by_contact(who.tenant, contact_id)
    form = EraseContactForm()
    if not form.validate_on_submit():
        return _render(subject, form, 400)
    if not _typed_matches(form.confirm.data or "", subject):
        form.confirm.errors = [_("Type the number exactly as shown (%(number)s) to confirm.", number=subject.label)]
        return _render(subject, form, 400)
    report = privacy.erase_contact(who.tenant, who.actor(), subject, keep_opt_out=bool(form.keep_opt_out.data))
    message = _(
        "%(number)s was erased. Messages: %(messages)d · files: %(files)d · chats: %(chats)d.",
        number=subject.masked,
        messages=report.counts["messages"],
        files=report.counts["files"],
        chats=report.counts["chats"],
    )
    if report.waha_failed:
        message += " " + _("Chats WhatsApp could not delete: %(n)d. Delete them on the phone.", n=report.waha_failed)
    flash(message, "success")
    return redirect_to(url_for("contacts.index"))
