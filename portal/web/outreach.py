"""The send queue's pages: a session's queue (position, ETA, why each message waits; pause / resume, cancel one,
clear all campaign traffic) live over htmx, and the tenant's scheduled messages (list, change, cancel).

Times are shown and entered in the tenant's time zone (Administration > Outreach). Every action is a POST with
the CSRF token, audited by the service; another tenant's session or message is a 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, flash, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, TextAreaField
from wtforms.validators import DataRequired, Length

from portal.i18n import N_, in_zone, ngettext, translated
from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.models import Tenant
from portal.services import outreach
from portal.services.errors import NotFound, ServiceError
from portal.services.outreach.overview import queue_view
from portal.services.outreach.scheduled import UNSET
from portal.tenancy import require
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_service_error, confirm_page, page, page_or_fragment, principal, redirect_to

bp = Blueprint("outreach", __name__, url_prefix="/outreach")

POLL_SECONDS = 2
TEXT_LIMIT = 4096


def _tenant() -> Tenant:
    return principal().tenant


def local_time(tenant_id: int) -> Any:
    """A formatter of UTC times in the tenant's time zone, for the reader's language ("1 May 2026, 09:00 CEST")."""
    zone = ZoneInfo(outreach.outreach_settings(tenant_id).time_zone)

    def show(value: datetime | None) -> str:
        return in_zone(value, zone) if value else "—"

    return show


def _queue_context(session_id: str) -> dict[str, Any]:
    tenant = _tenant()
    view = queue_view(tenant, session_id)
    return {
        "view": view,
        "local": local_time(tenant.id),
        "form": ConfirmForm(),
        "may_send": principal().can("messages:send"),
        "poll_seconds": POLL_SECONDS,
    }


@bp.get("/sessions/<session_id>")
@login_required
@require("messages:read")
def queue(session_id: str) -> ResponseReturnValue:
    return page_or_fragment("outreach/queue.html", "outreach/_queue.html", **_queue_context(session_id))


@bp.get("/sessions/<session_id>/live")
@login_required
@require("messages:read")
def live(session_id: str) -> ResponseReturnValue:
    """The queue block again, or 204 while nothing changed since the version the page shows."""
    context = _queue_context(session_id)
    if request.args.get("v") == context["view"].version:
        return Response(status=204)
    return page_or_fragment("outreach/queue.html", "outreach/_queue.html", **context)


def _back(session_id: str) -> ResponseReturnValue:
    return redirect_to(url_for("outreach.queue", session_id=session_id))


@bp.post("/sessions/<session_id>/pause")
@login_required
@require("messages:send")
def pause(session_id: str) -> ResponseReturnValue:
    if ConfirmForm().validate_on_submit():
        outreach.pause_session(_tenant(), session_id, principal().actor())
        flash(_("The queue is paused: nothing more is sent until you resume it."), "info")
    return _back(session_id)


@bp.post("/sessions/<session_id>/resume")
@login_required
@require("messages:send")
def resume(session_id: str) -> ResponseReturnValue:
    if ConfirmForm().validate_on_submit():
        outreach.resume_session(_tenant(), session_id, principal().actor())
        flash(_("The queue is running again."), "success")
    return _back(session_id)


@bp.post("/sessions/<session_id>/items/<int(big=True):item_id>/cancel")
@login_required
@require("messages:send")
def cancel(session_id: str, item_id: int) -> ResponseReturnValue:
    if ConfirmForm().validate_on_submit():
        try:
            item = outreach.get_item(_tenant(), item_id)
            if item.session_id != session_id:
                raise NotFound(N_("No such queued message."), code="queued_send_not_found")
            outreach.cancel(_tenant(), item_id, principal().actor())
        except ServiceError as exc:
            if exc.status == 404:
                raise
            flash(translated(exc.message), "error")
        else:
            flash(_("That message will not be sent."), "success")
    return _back(session_id)


@bp.route("/sessions/<session_id>/clear", methods=["GET", "POST"])
@login_required
@require("messages:send")
def clear(session_id: str) -> ResponseReturnValue:
    """Cancel all campaign traffic of the session, after a confirmation (what to do after a ban warning)."""
    tenant = _tenant()
    view = queue_view(tenant, session_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        count = outreach.clear_campaign_traffic(tenant, session_id, principal().actor())
        flash(ngettext("Cancelled %(num)s campaign message.", "Cancelled %(num)s campaign messages.", count), "success")
        return _back(session_id)
    return confirm_page(
        form,
        title=_("Clear campaign traffic of %(name)s", name=view.session.name),
        heading=_("Cancel every queued campaign message?"),
        subject=(_("Session"), view.session.name),
        message=ngettext(
            "%(num)s campaign message is waiting. It will not be sent; messages being sent right now finish. "
            "Scheduled and other single messages stay in the queue.",
            "%(num)s campaign messages are waiting. They will not be sent; messages being sent right now finish. "
            "Scheduled and other single messages stay in the queue.",
            view.counts["campaign"],
        ),
        action=url_for("outreach.clear", session_id=session_id),
        button=_("Cancel campaign messages"),
        cancel=url_for("outreach.queue", session_id=session_id),
        trail=[
            (_("Sessions"), url_for("sessions.index")),
            (view.session.name, url_for("sessions.detail", session_id=session_id)),
        ],
        here=_("Clear campaign traffic"),
    )


# ---- scheduled messages -----------------------------------------------------------------------------------


class ScheduledEditForm(FlaskForm):
    send_at = DateTimeLocalField(
        _l("Send at"), format="%Y-%m-%dT%H:%M", validators=[DataRequired(_l("Choose a time."))]
    )
    text = TextAreaField(_l("Message"), validators=[Length(max=TEXT_LIMIT)], render_kw={"data-limit": TEXT_LIMIT})


def localize(value: datetime | None, tenant_id: int) -> datetime | None:
    """A time a person entered (no offset) as the tenant's local time."""
    if value is None:
        return None
    return value.replace(tzinfo=ZoneInfo(outreach.outreach_settings(tenant_id).time_zone))


@bp.get("/scheduled")
@login_required
@require("messages:read")
def scheduled() -> ResponseReturnValue:
    tenant = _tenant()
    state = request.args.get("state") or None
    try:
        found = outreach.list_scheduled(tenant, state=state, cursor=request.args.get("cursor") or None, limit=50)
    except ServiceError:
        found = outreach.list_scheduled(tenant, limit=50)
        state = None
    return page(
        "outreach/scheduled.html",
        page_of=found,
        state=state,
        local=local_time(tenant.id),
        form=ConfirmForm(),
        may_send=principal().can("messages:send"),
        zone=outreach.outreach_settings(tenant.id).time_zone,
    )


@bp.route("/scheduled/<int(big=True):item_id>", methods=["GET", "POST"])
@login_required
@require("messages:send")
def edit_scheduled(item_id: int) -> ResponseReturnValue:
    tenant = _tenant()
    item = outreach.get_scheduled(tenant, item_id)
    zone = ZoneInfo(outreach.outreach_settings(tenant.id).time_zone)
    form = ScheduledEditForm()
    status = 200
    if not form.is_submitted():
        form.send_at.data = item.not_before.astimezone(zone).replace(tzinfo=None) if item.not_before else None
        form.text.data = item.body or ""
    elif form.validate():
        try:
            outreach.update_scheduled(
                tenant,
                item.id,
                principal().actor(),
                send_at=localize(form.send_at.data, tenant.id),
                text=form.text.data if (form.text.data or "").strip() != (item.body or "") else UNSET,
            )
        except ServiceError as exc:
            apply_service_error(form, exc, {"sendAt": "send_at"})
            status = exc.status
        else:
            flash(_("Scheduled message changed."), "success")
            return redirect_to(url_for("outreach.scheduled"))
    else:
        status = 400
    return page("outreach/scheduled_edit.html", status, form=form, item=item, zone=zone.key)


@bp.post("/scheduled/<int(big=True):item_id>/cancel")
@login_required
@require("messages:send")
def cancel_scheduled(item_id: int) -> ResponseReturnValue:
    if ConfirmForm().validate_on_submit():
        try:
            outreach.cancel_scheduled(_tenant(), item_id, principal().actor())
        except ServiceError as exc:
            if exc.status == 404:
                raise
            flash(translated(exc.message), "error")
        else:
            flash(_("Scheduled message cancelled."), "success")
    return redirect_to(url_for("outreach.scheduled"))
