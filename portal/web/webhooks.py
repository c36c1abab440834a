"""The tenant's webhook endpoints: create (secret shown once), edit, disable, delete, test, delivery log, replay."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from werkzeug.wrappers import Response

from portal.extensions import htmx
from portal.i18n import gettext as _
from portal.i18n import translated
from portal.models import WebhookEndpoint
from portal.services import forwarding
from portal.services.errors import ServiceError
from portal.tenancy import require
from portal.web import once
from portal.web.admin_forms import EndpointForm
from portal.web.forms import ConfirmForm, choices
from portal.web.helpers import apply_service_error, confirm_page, page, principal, reads_only

bp = Blueprint("admin_webhooks", __name__, url_prefix="/admin/webhooks")

DELIVERY_PAGE = 25


def _form(endpoint: WebhookEndpoint | None = None) -> EndpointForm:
    form = EndpointForm(obj=endpoint if request.method == "GET" else None)
    offered = forwarding.endpoint_event_choices(endpoint.events if endpoint is not None else [])
    form.events.choices = choices((name, translated(label)) for name, label in offered)
    if request.method == "GET" and not form.events.data:
        form.events.data = ["*"]
    return form


def _refused_as_private(exc: ServiceError) -> bool:
    """True when the service refused the URL for resolving to a loopback or private address (the refusal the
    operator can lift for development with WEBHOOK_ALLOW_PRIVATE)."""
    return any(
        item.get("field") == "url" and "non-public address" in str(item.get("message") or "")
        for item in (exc.details or {}).get("fields", []) or []
    )


def _events(form: EndpointForm) -> list[str]:
    # "Every event" wins over single picks, so the stored list says what the endpoint really gets.
    chosen = list(form.events.data or [])
    return ["*"] if "*" in chosen else chosen


@bp.get("/")
@login_required
@require("webhooks:read")
def index() -> ResponseReturnValue:
    who = principal()
    return page("admin/webhooks.html", endpoints=forwarding.list_endpoints(who.tenant))


@bp.route("/new", methods=["GET", "POST"])
@login_required
@require("webhooks:manage")
def create() -> ResponseReturnValue:
    who = principal()
    form = _form()
    if request.method == "GET":
        return page("admin/webhook_form.html", form=form, endpoint=None)
    if form.validate_on_submit():
        try:
            endpoint, secret = forwarding.create_endpoint(
                who.tenant,
                who.actor(),
                url=form.url.data.strip(),
                events=_events(form),
                description=(form.description.data or "").strip(),
            )
        except ServiceError as exc:
            apply_service_error(form, exc)
            return page(
                "admin/webhook_form.html", exc.status, form=form, endpoint=None, private_hint=_refused_as_private(exc)
            )
        return _show_secret_once(endpoint.id, secret, rotated=False)
    return page("admin/webhook_form.html", 400, form=form, endpoint=None)


def _show_secret_once(endpoint_id: int, secret: str, *, rotated: bool) -> ResponseReturnValue:
    """Redirect to the page that shows the signing secret, so a reload repeats nothing. The secret waits
    server-side for that page's one read: never in a URL, a cookie or a stored flash."""
    key = once.keep_for_viewer("webhook-secret", {"endpoint_id": endpoint_id, "secret": secret, "rotated": rotated})
    return redirect(url_for(".created", key=key), code=303)


@bp.get("/created/<key>")
@login_required
@require("webhooks:manage")
def created(key: str) -> ResponseReturnValue:
    who = principal()
    kept = once.take_for_viewer("webhook-secret", key)
    if kept is None:
        return once.gone(
            _("The signing secret was shown already"),
            _(
                "A signing secret is shown only once and cannot be shown again. If you did not copy it, open the "
                "endpoint and make a new secret."
            ),
            back=url_for(".index"),
            back_label=_("Back to the webhooks"),
        )
    endpoint = forwarding.get_endpoint(who.tenant, int(kept["endpoint_id"]))
    return page(
        "admin/webhook_created.html",
        no_store=True,
        endpoint=endpoint,
        secret=str(kept["secret"]),
        rotated=bool(kept["rotated"]),
    )


DELIVERY_POLL_SECONDS = 3


def _deliveries(tenant: Any, endpoint_id: int | None) -> dict[str, Any]:
    """One page of the delivery log (of one endpoint, or of all). An unknown `status` is refused (400), not
    silently dropped. While a delivery shown is still pending, the log refreshes itself."""
    status = request.args.get("status") or None
    result = forwarding.list_deliveries(
        tenant, endpoint_id=endpoint_id, status=status, cursor=request.args.get("cursor") or None, limit=DELIVERY_PAGE
    )
    deliveries = list(result.items)
    return {
        "deliveries": deliveries,
        "next_cursor": result.next_cursor,
        "status": status,
        "statuses": forwarding.DELIVERY_STATUSES,
        "poll_seconds": DELIVERY_POLL_SECONDS,
        "polling": any(d.status == "pending" for d in deliveries),
        "list_endpoint": "admin_webhooks.detail" if endpoint_id is not None else "admin_webhooks.deliveries",
        "list_args": {"endpoint_id": endpoint_id} if endpoint_id is not None else {},
    }


@bp.get("/<int:endpoint_id>")
@login_required
@require("webhooks:read")
def detail(endpoint_id: int) -> ResponseReturnValue:
    who = principal()
    endpoint = forwarding.get_endpoint(who.tenant, endpoint_id)
    context = dict(endpoint=endpoint, confirm=ConfirmForm(), **_deliveries(who.tenant, endpoint.id))
    if htmx and htmx.target == "deliveries":
        return page("admin/_deliveries.html", **context)
    return page("admin/webhook_detail.html", **context)


@bp.get("/deliveries")
@reads_only
@login_required
@require("webhooks:read")
def deliveries() -> ResponseReturnValue:
    """Every endpoint's deliveries in one log (the dashboard's failed-deliveries figure links here)."""
    who = principal()
    context = dict(
        endpoint=None,
        endpoints={e.id: e for e in forwarding.list_endpoints(who.tenant)},
        **_deliveries(who.tenant, None),
    )
    if htmx and htmx.target == "deliveries":
        return page("admin/_deliveries.html", **context)
    return page("admin/deliveries.html", **context)


@bp.route("/<int:endpoint_id>/edit", methods=["GET", "POST"])
@login_required
@require("webhooks:manage")
def edit(endpoint_id: int) -> ResponseReturnValue:
    who = principal()
    endpoint = forwarding.get_endpoint(who.tenant, endpoint_id)
    form = _form(endpoint)
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                forwarding.update_endpoint(
                    who.tenant,
                    endpoint.id,
                    who.actor(),
                    url=form.url.data.strip(),
                    events=_events(form),
                    description=(form.description.data or "").strip(),
                )
            except ServiceError as exc:
                apply_service_error(form, exc)
                return page(
                    "admin/webhook_form.html",
                    exc.status,
                    form=form,
                    endpoint=endpoint,
                    private_hint=_refused_as_private(exc),
                )
            flash(_("The endpoint is saved."), "success")
            return redirect(url_for(".detail", endpoint_id=endpoint.id))
        return page("admin/webhook_form.html", 400, form=form, endpoint=endpoint)
    return page("admin/webhook_form.html", form=form, endpoint=endpoint)


@bp.post("/<int:endpoint_id>/enabled")
@login_required
@require("webhooks:manage")
def set_enabled(endpoint_id: int) -> ResponseReturnValue:
    who = principal()
    enable = request.form.get("enabled") == "1"
    endpoint = forwarding.update_endpoint(who.tenant, endpoint_id, who.actor(), is_enabled=enable)
    flash(
        _("The endpoint is enabled again.")
        if enable
        else _("The endpoint is disabled: nothing is sent to it until you enable it."),
        "success",
    )
    return redirect(url_for(".detail", endpoint_id=endpoint.id))


def _confirm(endpoint_id: int, target: str, button: str, *, title: str, message: str) -> Response:
    """The confirmation page of a button on an endpoint's page; {url} in the texts is the endpoint's URL."""
    endpoint = forwarding.get_endpoint(principal().tenant, endpoint_id)
    return confirm_page(
        title=title.format(url=endpoint.url),
        message=message.format(url=endpoint.url),
        action=url_for(target, endpoint_id=endpoint.id),
        button=button,
        cancel=url_for(".detail", endpoint_id=endpoint.id),
    )


@bp.get("/<int:endpoint_id>/rotate")
@login_required
@require("webhooks:manage")
def confirm_rotate(endpoint_id: int) -> ResponseReturnValue:
    return _confirm(
        endpoint_id,
        ".rotate",
        _("Make a new secret"),
        title=_("Give this endpoint a new signing secret?"),
        message=_(
            "Deliveries to {url} are signed with the new secret at once, so your system must switch to it "
            "too. The new secret is shown once, on the next page."
        ),
    )


@bp.post("/<int:endpoint_id>/rotate")
@login_required
@require("webhooks:manage")
def rotate(endpoint_id: int) -> ResponseReturnValue:
    who = principal()
    endpoint, new_secret = forwarding.rotate_secret(who.tenant, endpoint_id, who.actor())
    return _show_secret_once(endpoint.id, new_secret, rotated=True)


@bp.post("/<int:endpoint_id>/test")
@login_required
@require("webhooks:manage")
def send_test(endpoint_id: int) -> ResponseReturnValue:
    who = principal()
    forwarding.send_test_event(who.tenant, endpoint_id, who.actor())
    flash(_("A test event is on its way; its delivery shows in the log below."), "success")
    return redirect(url_for(".detail", endpoint_id=endpoint_id))


@bp.get("/<int:endpoint_id>/delete")
@login_required
@require("webhooks:manage")
def confirm_delete(endpoint_id: int) -> ResponseReturnValue:
    return _confirm(
        endpoint_id,
        ".delete",
        _("Delete endpoint"),
        title=_("Delete the endpoint {url}?"),
        message=_(
            "Events stop going there at once and its delivery log is deleted with it. To pause it instead, disable it."
        ),
    )


@bp.post("/<int:endpoint_id>/delete")
@login_required
@require("webhooks:manage")
def delete(endpoint_id: int) -> ResponseReturnValue:
    who = principal()
    forwarding.delete_endpoint(who.tenant, endpoint_id, who.actor())
    flash(_("The endpoint is deleted."), "success")
    return redirect(url_for(".index"))


@bp.post("/deliveries/<int(big=True):delivery_id>/replay")
@login_required
@require("webhooks:manage")
def replay(delivery_id: int) -> ResponseReturnValue:
    who = principal()
    delivery = forwarding.replay_delivery(who.tenant, delivery_id, who.actor())
    flash(_("The event is queued for delivery again."), "success")
    return redirect(url_for(".detail", endpoint_id=delivery.endpoint_id) if delivery.endpoint_id else url_for(".index"))
