"""Campaign pages: the list, the wizard, a campaign's live progress (counts and chart, polled with htmx),
pause / resume / cancel, and the recipients export and error report (CSV, streamed)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, flash, redirect, stream_with_context, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from portal.i18n import N_, translated
from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.models import utcnow
from portal.services import campaigns as campaigns_service
from portal.services.errors import Invalid, ServiceError
from portal.services.media import uploaded_media
from portal.services.sessions import list_sessions
from portal.tenancy import require
from portal.web.campaign_forms import CampaignForm
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_service_error, page, principal
from portal.web.wording import status_label

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")
READ, SEND = "messages:read", "messages:send"
LIVE = ("importing", "scheduled", "checking", "running")


@bp.get("/")
@login_required
@require(READ)
def index() -> ResponseReturnValue:
    tenant = principal().tenant
    rows = [(c, campaigns_service.counts(c)) for c in campaigns_service.list_campaigns(tenant)]
    return page("campaigns/index.html", campaigns=rows)


def _form() -> CampaignForm:
    form = CampaignForm()
    form.session_ids.choices = [
        (s.id, f"{s.name} ({status_label(s.status).lower()})") for s in list_sessions(principal().tenant)
    ]
    return form


def _start_at(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    except ValueError:
        raise Invalid.field("start_at", N_("Give a date and time.")) from None


_ALIASES = {
    "startAt": "start_at",
    "sessionIds": "session_ids",
    "quietStart": "quiet_start",
    "quietEnd": "quiet_end",
    "dailyCap": "daily_cap",
}


@bp.route("/new", methods=["GET", "POST"])
@login_required
@require(SEND)
def create() -> ResponseReturnValue:
    who = principal()
    form = _form()
    if not form.is_submitted():
        return page("campaigns/new.html", form=form)
    chosen = _chosen_csv(form)
    if not form.validate():
        return page("campaigns/new.html", 400, form=_keeping(form, chosen))
    try:
        csv_content = tag = media = None
        if form.audience.data == "csv":
            csv_content = chosen[0] if chosen else b""
            if not csv_content:
                raise Invalid.field("csv_file", N_("Choose the CSV file with the audience."))
        else:
            tag = form.tag.data or ""
            if not tag.strip():
                raise Invalid.field("tag", N_("Give the contact tag."))
        attachment = form.media_file.data
        if attachment and attachment.filename:
            media = uploaded_media(attachment.read(), attachment.filename, attachment.mimetype)
        campaign = campaigns_service.create_campaign(
            who.tenant,
            who.actor(),
            name=form.name.data,
            session_ids=form.session_ids.data or [],
            template=form.template.data,
            csv_content=csv_content,
            tag=tag,
            media=media,
            start_at=_start_at(form.start_at.data),
            quiet_start=form.quiet_start.data or None,
            quiet_end=form.quiet_end.data or None,
            daily_cap=form.daily_cap.data,
        )
    except ServiceError as exc:
        aliases = {**_ALIASES, "csv": "csv_file", "media": "media_file", "sessionIds": "session_ids"}
        apply_service_error(form, exc, aliases)
        return page("campaigns/new.html", exc.status, form=_keeping(form, chosen))
    flash(_("The campaign “%(name)s” is created; its audience is being imported.", name=campaign.name), "success")
    return redirect(url_for(".detail", campaign_id=campaign.id), code=303)


KEEP_CSV_MAX = 512 * 1024  # a larger file is chosen again after a refusal rather than carried in the page


def _chosen_csv(form: CampaignForm) -> tuple[bytes, str] | None:
    """The audience file of this submission (content, name): the one chosen now, else the one kept from the
    page before."""
    upload = form.csv_file.data
    filename = getattr(upload, "filename", None) if upload is not None else None
    if filename:
        content = upload.read()
        if content:
            return content, filename
    if form.csv_kept.data:
        try:
            return base64.b64decode(form.csv_kept.data, validate=True), form.csv_kept_name.data or "audience.csv"
        except (binascii.Error, ValueError):
            return None  # not what the page sent: as if no file was chosen
    return None


def _keeping(form: CampaignForm, chosen: tuple[bytes, str] | None) -> CampaignForm:
    """The form to show again, still holding the chosen file when it is small enough to carry."""
    content, name = chosen if chosen else (b"", "")
    small = bool(content) and len(content) <= KEEP_CSV_MAX
    form.csv_kept.data = base64.b64encode(content).decode() if small else ""
    form.csv_kept_name.data = name if small else ""
    if content and not small:
        form.csv_file.errors = [*form.csv_file.errors, _("Choose the file again: it is too large to keep.")]
    return form


# Delivery and read ticks keep arriving after the last send: the progress keeps refreshing this long after the end.
TICKS_AFTER_END = timedelta(minutes=15)


def _progress_context(campaign_id: Any) -> dict[str, Any]:
    campaign = campaigns_service.get_campaign(principal().tenant, campaign_id)
    ended = campaign.finished_at
    return {
        "campaign": campaign,
        "counts": campaigns_service.counts(campaign),
        "chart": campaigns_service.chart(campaign),
        "live": campaign.state in LIVE or (ended is not None and utcnow() - ended < TICKS_AFTER_END),
        "action_form": ConfirmForm(),
    }


def _session_names(session_ids: list[str]) -> str:
    """The campaign's sessions by name, as the tenant knows them (ids only of sessions deleted since)."""
    names = {s.id: s.name for s in list_sessions(principal().tenant)}
    return ", ".join(names.get(session_id, session_id) for session_id in session_ids)


@bp.get("/<int:campaign_id>")
@login_required
@require(READ)
def detail(campaign_id: int) -> ResponseReturnValue:
    context = _progress_context(campaign_id)
    return page("campaigns/detail.html", session_names=_session_names(context["campaign"].session_ids), **context)


@bp.get("/<int:campaign_id>/progress")
@login_required
@require(READ)
def progress(campaign_id: int) -> ResponseReturnValue:
    """The self-polling progress fragment (htmx); it stops polling once the campaign is no longer live."""
    context = _progress_context(campaign_id)
    return page("campaigns/_progress.html", 200 if context["live"] else 286, **context)


_ACTIONS = {
    "pause": (campaigns_service.pause_campaign, _l("The campaign “%(name)s” is paused.")),
    "resume": (campaigns_service.resume_campaign, _l("The campaign “%(name)s” is resumed.")),
    "cancel": (campaigns_service.cancel_campaign, _l("The campaign “%(name)s” is cancelled.")),
}


@bp.post("/<int:campaign_id>/<any(pause, resume, cancel):action>")
@login_required
@require(SEND)
def act(campaign_id: int, action: str) -> ResponseReturnValue:
    who = principal()
    if not ConfirmForm().validate_on_submit():
        flash(_("The form expired; try again."), "error")
        return redirect(url_for(".detail", campaign_id=campaign_id), code=303)
    run, done = _ACTIONS[action]
    try:
        campaign = run(who.tenant, who.actor(), campaign_id)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        flash(translated(exc.message), "error")
    else:
        flash(str(done) % {"name": campaign.name}, "success")
    return redirect(url_for(".detail", campaign_id=campaign_id), code=303)


def _csv(rows: Any, filename: str) -> Response:
    response = Response(stream_with_context(rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/<int:campaign_id>/recipients.csv")
@login_required
@require(READ)
def export(campaign_id: int) -> ResponseReturnValue:
    campaign = campaigns_service.get_campaign(principal().tenant, campaign_id)
    return _csv(campaigns_service.export_rows(campaign), f"campaign-{campaign.id}-recipients.csv")


@bp.get("/<int:campaign_id>/errors.csv")
@login_required
@require(READ)
def errors(campaign_id: int) -> ResponseReturnValue:
    campaign = campaigns_service.get_campaign(principal().tenant, campaign_id)
    return _csv(campaigns_service.error_report(campaign), f"campaign-{campaign.id}-errors.csv")


@bp.app_template_global()
def campaign_state_label(state: str) -> str:
    """Words for a campaign's state."""
    return {
        "importing": _("Importing the audience"),
        "scheduled": _("Scheduled"),
        "checking": _("Checking numbers"),
        "running": _("Sending"),
        "paused": _("Paused"),
        "completed": _("Completed"),
        "cancelled": _("Cancelled"),
        "failed": _("Failed"),
    }.get(state, state)
