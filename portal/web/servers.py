"""Platform admin pages for the WAHA servers: health, version, capacity, sessions; add, drain, check.

Only platform admins get in. Health shown here is what the last fleet check stored (the periodic job, or the
"Check now" buttons); rendering these pages never calls WAHA.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, StringField
from wtforms.validators import URL, DataRequired, Length, NumberRange

from portal.i18n import gettext as _
from portal.i18n import lazy_gettext as _l
from portal.models import WahaServer
from portal.services import fleet
from portal.services import servers as servers_service
from portal.services.errors import ServiceError
from portal.services.health import waha_health
from portal.services.servers import MULTI_SESSION_SINCE
from portal.web.helpers import apply_service_error, page_or_fragment, platform_admins_only, redirect_to, user_actor

bp = Blueprint("servers", __name__, url_prefix="/platform/servers")
platform_admins_only(bp, _l("Only platform admins can manage WAHA servers."))

MIN_VERSION = ".".join(map(str, MULTI_SESSION_SINCE))


class ServerForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    base_url = StringField(_l("Base URL"), validators=[DataRequired(), URL(require_tld=False), Length(max=255)])
    api_key = PasswordField(_l("API key"), validators=[DataRequired(), Length(max=500)])
    capacity = IntegerField(_l("Capacity (sessions)"), default=50, validators=[NumberRange(min=1, max=100000)])


class ServerSettingsForm(FlaskForm):
    capacity = IntegerField(_l("Capacity (sessions)"), validators=[NumberRange(min=1, max=100000)])
    is_enabled = BooleanField(_l("Enabled"))


def _started_at(start_timestamp: int | None) -> datetime | None:
    if not start_timestamp:
        return None
    return datetime.fromtimestamp(start_timestamp / 1000, tz=UTC)


def _placement(server: WahaServer) -> str:
    """Why a server does or does not take new sessions, as one word for the state badge."""
    if not server.is_enabled:
        return "disabled"
    if server.is_draining:
        return "draining"
    if not servers_service.accepts_new_sessions(server):
        return "refused"  # failing its checks, or a single-session Core image
    return "taking"


def _rows() -> list[dict[str, Any]]:
    rows = waha_health(live=False)
    placement = {s.id: _placement(s) for s in servers_service.list_servers()}
    for row in rows:
        row["outdated"] = fleet.predates_multi_session(row["version"])
        row["placement"] = placement.get(row["id"], "refused")
    return rows


@bp.get("/")
def index() -> ResponseReturnValue:
    rows = _rows()
    return page_or_fragment("servers/index.html", "servers/_table.html", rows=rows, min_version=MIN_VERSION)


@bp.post("/check")
def check_all() -> ResponseReturnValue:
    results = fleet.check_servers(warn_always=True)
    down = [r["name"] for r in results if r["health"] != "ok"]
    if down:
        flash(
            _("Checked %(count)s servers; not answering: %(names)s.", count=len(results), names=", ".join(down)),
            "error",
        )
    else:
        flash(_("Checked %(results)s servers; all answer.", results=len(results)), "success")
    return redirect_to(url_for(".index"))


@bp.route("/new", methods=["GET", "POST"])
def create() -> ResponseReturnValue:
    form = ServerForm()
    if request.method == "POST" and form.validate_on_submit():
        try:
            server = servers_service.add_server(
                form.name.data, form.base_url.data, form.api_key.data, user_actor(), capacity=form.capacity.data
            )
        except ServiceError as exc:
            apply_service_error(form, exc)
        else:
            result = fleet.check_server(server.id)
            if result["health"] == "ok":
                flash(
                    _(
                        "Added %(name)s: WAHA %(result)s (%(result2)s) answers.",
                        name=server.name,
                        result=result["version"],
                        result2=result["engine"],
                    ),
                    "success",
                )
            else:
                flash(
                    _(
                        "Added %(name)s, but it does not answer yet: %(result)s. "
                        "It takes no sessions until a health check passes.",
                        name=server.name,
                        result=result["error"],
                    ),
                    "error",
                )
            return redirect_to(url_for(".detail", server_id=server.id))
    status = 400 if request.method == "POST" else 200
    return render_template("servers/new.html", form=form), status


@bp.get("/<int:server_id>")
def detail(server_id: int) -> ResponseReturnValue:
    server = servers_service.get_server(server_id)
    form = ServerSettingsForm(capacity=server.capacity, is_enabled=server.is_enabled)
    return _detail_page(server, form)


def _detail_page(server: WahaServer, form: ServerSettingsForm, status: int = 200) -> ResponseReturnValue:
    sessions = fleet.sessions_on(server.id)
    count = servers_service.session_counts().get(server.id, 0)
    return render_template(
        "servers/detail.html",
        server=server,
        form=form,
        sessions=sessions,
        count=count,
        started_at=_started_at(server.start_timestamp),
        outdated=fleet.predates_multi_session(server.version),
        min_version=MIN_VERSION,
        placement=_placement(server),
    ), status


@bp.post("/<int:server_id>/settings")
def settings(server_id: int) -> ResponseReturnValue:
    server = servers_service.get_server(server_id)
    form = ServerSettingsForm()
    if not form.validate_on_submit():
        return _detail_page(server, form, 400)
    try:
        fleet.update_server(server.id, user_actor(), capacity=form.capacity.data, is_enabled=form.is_enabled.data)
    except ServiceError as exc:
        apply_service_error(form, exc)
        return _detail_page(server, form, exc.status)
    flash(_("Saved."), "success")
    return redirect_to(url_for(".detail", server_id=server.id))


@bp.post("/<int:server_id>/drain")
def drain(server_id: int) -> ResponseReturnValue:
    server = fleet.drain_server(server_id, user_actor())
    flash(_("%(name)s is draining: no new sessions go there; its sessions keep running.", name=server.name), "success")
    return redirect_to(url_for(".detail", server_id=server.id))


@bp.post("/<int:server_id>/undrain")
def undrain(server_id: int) -> ResponseReturnValue:
    server = fleet.undrain_server(server_id, user_actor())
    flash(_("%(name)s takes new sessions again.", name=server.name), "success")
    return redirect_to(url_for(".detail", server_id=server.id))


@bp.post("/<int:server_id>/check")
def check(server_id: int) -> ResponseReturnValue:
    result = fleet.check_server(server_id)
    if result["health"] == "ok":
        flash(
            _(
                "%(result)s answers: WAHA %(result2)s (%(result3)s, %(result4)s).",
                result=result["name"],
                result2=result["version"],
                result3=result["engine"],
                result4=result["tier"],
            ),
            "success",
        )
    else:
        flash(_("%(result)s does not answer: %(result2)s", result=result["name"], result2=result["error"]), "error")
    return redirect_to(url_for(".detail", server_id=server_id))
