"""Simulator-only control surface under /_sim (no API key): JSON endpoints plus an HTML page.

Each POST endpoint takes JSON and answers JSON; the same endpoint takes an HTML
form post and then redirects back to the page, so the page needs no scripts.
With scripts, control.js refreshes the session table's live cells every few
seconds without touching the forms, so nothing typed is lost.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

from flask import Blueprint, Response, current_app, redirect, request

from .errors import ControlError
from .images import qr_png
from .simulator import SCAN_QR_CODE, Simulator
from .web import json_response

bp = Blueprint("control", __name__, url_prefix="/_sim")

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def sim() -> Simulator:
    return current_app.extensions["wahasim"]


def _is_form() -> bool:
    return request.mimetype in FORM_TYPES


def _payload() -> dict:
    if _is_form():
        return request.form.to_dict()
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _answer(data, status: int = 200):
    if _is_form():
        return redirect("/_sim/", code=303)
    return json_response(data, status)


def _int(value, name: str, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise ControlError(400, f"{name} is required")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ControlError(400, f"{name} must be an integer") from None


def _truthy(value) -> bool:
    return value in (True, 1, "1", "true", "True", "on", "yes")


# ---------------------------------------------------------------- JSON endpoints


@bp.get("/state")
def state():
    return json_response(sim().state())


@bp.get("/webhooks")
def webhooks():
    return json_response(sim().dispatcher.log_entries())


@bp.get("/events")
def events():
    return json_response(sim().recent_events())


@bp.get("/sessions/<name>/messages")
def messages(name):
    return json_response(sim().sent_messages(name))


@bp.get("/sessions/<name>/qr.png")
def qr_image(name):
    info = sim().session_state(name)
    if info is None or not info["qr"]["value"]:
        raise ControlError(404, "no QR code right now")
    return Response(qr_png(info["qr"]["value"]), mimetype="image/png")


@bp.post("/sessions")
def create():
    data = _payload()
    config: dict = {}
    if data.get("webhook"):
        config["webhooks"] = [{"url": data["webhook"], "events": ["*"]}]
        if data.get("hmac"):
            config["webhooks"][0]["hmac"] = {"key": data["hmac"]}
    if isinstance(data.get("config"), dict):
        config = data["config"]
    body = {"name": data.get("name") or None, "start": True, "config": config}
    return _answer(sim().create_session(body), 201)


@bp.post("/numbers/absent")
def numbers_absent():
    """{"numbers": [...], "absent": true|false}: check-exists answers false for these numbers (or true again)."""
    data = _payload()
    numbers = data.get("numbers") or []
    if isinstance(numbers, str):
        numbers = numbers.replace(",", " ").split()
    return _answer(sim().mark_absent([str(n) for n in numbers], data.get("absent", True) not in (False, "false", "0")))


@bp.post("/sessions/<name>/scan")
def scan(name):
    data = _payload()
    return _answer(sim().scan(name, data.get("phone") or None, data.get("pushName") or None))


@bp.post("/sessions/<name>/fail")
def fail(name):
    return _answer(sim().fail(name))


@bp.post("/sessions/<name>/stop")
def stop(name):
    return _answer(sim().control_stop(name))


@bp.post("/sessions/<name>/start")
def start(name):
    return _answer(sim().control_start(name))


@bp.post("/sessions/<name>/logout-from-phone")
def logout_from_phone(name):
    return _answer(sim().logout_from_phone(name, _payload().get("mode") or "rescan"))


@bp.post("/sessions/<name>/inbound")
def inbound(name):
    data = _payload()
    media = data.get("media")
    if _is_form():
        media = {"mimetype": "image/png"} if _truthy(data.get("image")) else None
    sender = data.get("from")
    if not sender:
        raise ControlError(400, "from is required")
    msg_id = sim().inbound(name, str(sender), str(data.get("text") or ""), media)
    return _answer({"id": msg_id}, 201)


@bp.post("/sessions/<name>/ack")
def ack(name):
    data = _payload()
    if not data.get("id"):
        raise ControlError(400, "id is required")
    emitted = sim().ack(name, str(data["id"]), _int(data.get("ack"), "ack"))
    return _answer({"emitted": emitted})


@bp.post("/sessions/<name>/react")
def react(name):
    data = _payload()
    if not data.get("id"):
        raise ControlError(400, "id is required")
    emoji = data.get("emoji")
    if not isinstance(emoji, str):
        raise ControlError(400, "emoji must be a string (empty removes the reaction)")
    reaction_id = sim().customer_react(name, str(data["id"]), emoji, data.get("from") or None)
    return _answer({"id": reaction_id}, 201)


@bp.post("/sessions/<name>/edit")
def edit(name):
    data = _payload()
    if not data.get("id") or not isinstance(data.get("text"), str):
        raise ControlError(400, "id and text are required")
    return _answer({"id": sim().customer_edit(name, str(data["id"]), data["text"])}, 201)


@bp.post("/sessions/<name>/revoke")
def revoke(name):
    data = _payload()
    if not data.get("id"):
        raise ControlError(400, "id is required")
    return _answer({"id": sim().customer_revoke(name, str(data["id"]))}, 201)


@bp.post("/sessions/<name>/read")
def read(name):
    data = _payload()
    ids = data.get("ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise ControlError(400, "ids must be a list of message ids")
    return _answer({"read": sim().customer_read(name, data.get("chatId") or None, ids)})


@bp.post("/sessions/<name>/typing")
def typing(name):
    data = _payload()
    if not data.get("chatId"):
        raise ControlError(400, "chatId is required")
    return _answer(sim().customer_typing(name, str(data["chatId"]), str(data.get("state") or "typing")))


@bp.post("/sessions/<name>/passkey")
def passkey(name):
    data = _payload()
    phone = data.get("phone")
    return _answer(sim().require_passkey(name, _truthy(data.get("confirm")), str(phone) if phone else None))


@bp.post("/sessions/<name>/timelock")
def timelock(name):
    data = _payload()
    active = _truthy(data.get("active", True))
    return _answer(sim().set_timelock(name, active, _int(data.get("seconds"), "seconds", 3600), data.get("type")))


@bp.post("/sessions/<name>/capping")
def capping(name):
    data = _payload()
    used = data.get("used")
    return _answer(
        sim().set_capping(
            name,
            str(data.get("status") or "NONE"),
            _int(data.get("total"), "total", 1000),
            None if used in (None, "") else _int(used, "used"),
            _int(data.get("cycleSeconds"), "cycleSeconds", 30 * 24 * 3600),
        )
    )


CONTACT_FIELDS = {"name": "saved_name", "pushName": "push_name", "picture": "picture", "lid": "lid"}


@bp.post("/sessions/<name>/contacts")
def contact(name):
    data = _payload()
    if not data.get("id"):
        raise ControlError(400, "id is required")
    changes = {CONTACT_FIELDS[k]: v for k, v in data.items() if k in CONTACT_FIELDS}
    if "picture" in changes and _is_form():
        changes["picture"] = _truthy(changes["picture"])
    return _answer(sim().set_contact(name, str(data["id"]), **changes))


@bp.get("/sessions/<name>/contacts")
def contacts(name):
    return json_response(sim().contacts_of(name))


@bp.get("/sessions/<name>/reads")
def reads(name):
    return json_response(sim().read_receipts(name))


@bp.get("/sessions/<name>/typing")
def typing_calls(name):
    return json_response(sim().typing_log(name))


@bp.get("/pictures/<token>.png")
def picture(token):
    return Response(sim().get_picture(token), mimetype="image/png")


@bp.post("/restart")
def restart():
    sim().server_restart(wipe=_truthy(_payload().get("wipe")))
    return _answer({"startTimestamp": sim().start_timestamp})


@bp.post("/auto-read")
def auto_read():
    on = _truthy(_payload().get("on"))
    sim().set_auto_read(on)
    return _answer({"on": on})


@bp.post("/latency")
def latency():
    ms = _int(_payload().get("ms"), "ms", 0)
    sim().set_latency(ms)
    return _answer({"ms": ms})


@bp.post("/fail-next")
def fail_next():
    data = _payload()
    count = _int(data.get("count"), "count", 1)
    status = _int(data.get("status"), "status", 503)
    sim().set_fail_next(count, status)
    return _answer({"count": count, "status": status})


@bp.post("/reset")
def reset():
    sim().reset()
    return _answer({"reset": True})


# ---------------------------------------------------------------- HTML page


def _form(action: str, label: str, fields: str = "") -> str:
    return (
        f'<form method="post" action="{escape(action)}">{fields}<button type="submit">{escape(label)}</button></form>'
    )


def _live_cells(info: dict) -> str:
    """Status, phone and QR of a session: the cells the page refreshes while it is open."""
    name = info["name"]
    me = info.get("me") or {}
    qr = ""
    if info["status"] == SCAN_QR_CODE and info["qr"]["value"]:
        qr = (
            f'<img alt="QR for {escape(name)}" width="200" '
            f'src="/_sim/sessions/{quote(name)}/qr.png?n={info["qr"]["count"]}">'
        )
    return (
        f'<td data-live="status">{escape(info["status"])}</td>'
        f'<td data-live="me">{escape(me.get("id", ""))} {escape(me.get("pushName", ""))}</td>'
        f'<td data-live="qr">{qr}</td>'
    )


def _session_row(info: dict) -> str:
    name = info["name"]
    base = f"/_sim/sessions/{quote(name)}"
    actions = "".join(
        [
            _form(
                f"{base}/scan",
                "Scan",
                '<input name="phone" placeholder="phone" value="491701234567" size="13">'
                '<input name="pushName" placeholder="push name" size="10">',
            ),
            _form(
                f"{base}/passkey",
                "Ask for passkey",
                '<label><input type="checkbox" name="confirm" value="1"> with code</label>',
            ),
            _form(f"{base}/fail", "Fail"),
            _form(f"{base}/stop", "Stop"),
            _form(f"{base}/start", "Start"),
            _form(f"{base}/logout-from-phone", "Logout from phone"),
            _form(
                f"{base}/timelock",
                "Timelock",
                '<select name="active"><option value="1">on</option><option value="0">off</option></select>'
                '<input name="seconds" value="3600" size="6" title="seconds">',
            ),
            _form(
                f"{base}/capping",
                "Capping",
                '<select name="status"><option>NONE</option><option>FIRST_WARNING</option>'
                "<option>SECOND_WARNING</option><option>CAPPED</option></select>"
                '<input name="total" value="1000" size="5" title="quota">',
            ),
            _form(
                f"{base}/inbound",
                "Receive text",
                '<input name="from" value="491709999999" size="13"><input name="text" placeholder="text" value="hi">',
            ),
            _form(
                f"{base}/inbound",
                "Receive image",
                '<input name="from" value="491709999999" size="13">'
                '<input name="text" placeholder="caption" value="a picture">'
                '<input type="hidden" name="image" value="1">',
            ),
        ]
    )
    return (
        f'<tr data-session="{escape(name, quote=True)}"><td>{escape(name)}</td>{_live_cells(info)}'
        f"<td class=actions>{actions}</td></tr>"
    )


def _summary(state_: dict) -> str:
    return (
        f"Engine {escape(state_['engine'])}, version {escape(state_['version'])}, tier {escape(state_['tier'])}, "
        f"started {state_['startTimestamp']}, latency {state_['latencyMs']} ms, "
        f"failing next {state_['failNext']['count']} calls with {state_['failNext']['status']}."
    )


STYLE = """<style>
body{font-family:sans-serif;margin:1.5rem} table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.4rem;vertical-align:top} form{display:inline-block;margin:.15rem}
.actions{max-width:46rem} iframe{width:100%;height:16rem;border:1px solid #ccc}
</style>"""
SCRIPT = (Path(__file__).parent / "assets" / "control.js").read_text(encoding="utf-8")
REFRESH_SECONDS = 3


@bp.get("/control.js")
def script():
    return Response(SCRIPT, mimetype="text/javascript")


@bp.get("/live")
def live():
    """The session table alone, reloading itself: the live view for browsers without scripts."""
    state_ = sim().state()
    rows = (
        "".join(
            f'<tr data-session="{escape(info["name"], quote=True)}"><td>{escape(info["name"])}</td>'
            f"{_live_cells(info)}</tr>"
            for info in state_["sessions"].values()
        )
        or '<tr><td colspan="4">No sessions yet.</td></tr>'
    )
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>WAHA simulator sessions</title>{STYLE}</head><body>
<p>{_summary(state_)}</p>
<table><tr><th>Name</th><th>Status</th><th>Me</th><th>QR</th></tr>{rows}</table>
</body></html>"""
    return Response(html, mimetype="text/html")


@bp.get("/")
@bp.get("")
def page():
    state_ = sim().state()
    rows = (
        "".join(_session_row(info) for info in state_["sessions"].values())
        or '<tr data-empty><td colspan="5">No sessions yet.</td></tr>'
    )
    server = "".join(
        [
            _form(
                "/_sim/sessions",
                "Create session",
                '<input name="name" placeholder="name (optional)">'
                '<input name="webhook" placeholder="webhook URL (optional)" size="30">'
                '<input name="hmac" placeholder="HMAC key (optional)">',
            ),
            _form(
                "/_sim/restart",
                "Restart server",
                '<label><input type="checkbox" name="wipe" value="1"> wipe sessions</label>',
            ),
            _form(
                "/_sim/latency",
                "Set latency",
                f'<input name="ms" type="number" min="0" value="{state_["latencyMs"]}"> ms',
            ),
            _form(
                "/_sim/fail-next",
                "Fail next calls",
                '<input name="count" type="number" min="0" value="3"> calls with status '
                '<input name="status" type="number" value="503" min="0"> (0 = drop connection)',
            ),
            _form("/_sim/reset", "Reset everything"),
        ]
    )
    # No meta refresh: it reloaded the whole page and wiped whatever was being typed into a form. The script
    # refreshes the live cells only; without scripts the frame below shows the live table.
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>WAHA simulator</title>{STYLE}
<script src="/_sim/control.js" defer></script>
</head><body data-refresh-seconds="{REFRESH_SECONDS}">
<h1>WAHA simulator</h1>
<p><span id="sim-summary">{_summary(state_)}</span>
JSON: <a href="/_sim/state">state</a>, <a href="/_sim/webhooks">webhook deliveries</a>,
<a href="/_sim/events">events</a>.</p>
<h2>Sessions</h2>
<noscript><p>Without scripts this table shows the state when the page loaded; the frame below follows it live
(<a href="/_sim/live">open it alone</a>).</p><iframe src="/_sim/live" title="Sessions, live"></iframe></noscript>
<table id="sim-sessions"><thead><tr><th>Name</th><th>Status</th><th>Me</th><th>QR</th><th>Actions</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Server</h2>{server}
</body></html>"""
    return Response(html, mimetype="text/html")
