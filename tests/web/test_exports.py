"""CSV exports from the list pages: the rows the page lists (filters included), streamed, headers only when
nothing matches, formula cells defused, another tenant's rows never in them, the pages' permissions, audited, and
the pages' "Export CSV" links carrying their filters."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Contact, Message, WebhookDelivery, WebhookEndpoint, utcnow
from portal.services import audit as audit_service
from portal.services import exports
from portal.services import messages as messages_service
from portal.services.audit import Actor
from tests.builders import make_tenant, make_user, new_session, stored_message

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def read_csv(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def ids(rows: list[list[str]]) -> list[int]:
    return [int(r[0]) for r in rows[1:]]


def link(page: str, anchor_id: str) -> tuple[str, dict[str, list[str]]]:
    """The path and query of the link with id `anchor_id` on a page."""
    found = re.search(rf'<a id="{anchor_id}" href="([^"]+)"', page)
    assert found, f"no #{anchor_id} link"
    parts = urlsplit(unescape(found.group(1)))
    return parts.path, parse_qs(parts.query)


@pytest.fixture
def two_sessions(tenant: Any) -> tuple[Any, Any]:
    return new_session(tenant, "Alpha"), new_session(tenant, "Beta")


@pytest.fixture
def log(tenant: Any, two_sessions: tuple[Any, Any]) -> list[Message]:
    a, b = two_sessions
    return [
        stored_message(tenant, a, direction="out", status="READ", body="your order shipped"),
        stored_message(tenant, a, direction="in", status="DEVICE", body="where is my order?"),
        stored_message(tenant, a, direction="out", status="ERROR", body="order failed", error="boom"),
        stored_message(tenant, b, direction="out", status="READ", body="an order from Beta"),
        stored_message(tenant, a, direction="out", status="SERVER", body="nothing to see"),
    ]


# ---- messages --------------------------------------------------------------------------------------------------


def test_message_export_holds_the_rows_the_filtered_log_lists(owner_client, tenant, two_sessions, log):
    a, _ = two_sessions
    query = f"session={a.id}&direction=out&q=order"
    response = owner_client.get(f"/messages/export?{query}")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="messages-acme-\d{8}T\d{6}Z\.csv"', response.headers["Content-Disposition"]
    )
    rows = read_csv(response)
    assert rows[0] == list(exports.MESSAGE_COLUMNS)
    listed = messages_service.list_messages(tenant, session_id=a.id, direction="out", q="order").items
    assert ids(rows) == [m.id for m in listed] == [log[2].id, log[0].id]
    page = owner_client.get(f"/messages/?{query}").get_data(as_text=True)
    assert re.findall(r'<tr id="message-(\d+)"', page) == [str(i) for i in ids(rows)]
    failed = rows[1]
    assert failed[2:7] == [a.id, "Alpha", "out", "491709999999@c.us", "order failed"]
    assert failed[9:] == ["ERROR", "boom"] and ISO_UTC.match(failed[1])


def test_message_export_of_an_empty_range_is_the_header_row_alone(owner_client, log):
    response = owner_client.get("/messages/export?since=2001-01-01&until=2001-01-02")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == ",".join(exports.MESSAGE_COLUMNS) + "\r\n"


def test_export_defuses_cells_that_a_spreadsheet_would_run(owner_client, tenant, two_sessions):
    a, _ = two_sessions
    for body in ('=HYPERLINK("http://evil")', "+49 call", "-1+1", "@SUM(A1)", "\tTab", "plain - text"):
        stored_message(tenant, a, body=body)
    bodies = [r[6] for r in read_csv(owner_client.get("/messages/export"))[1:]]
    assert sorted(bodies) == sorted(
        ['\'=HYPERLINK("http://evil")', "'+49 call", "'-1+1", "'@SUM(A1)", "'\tTab", "plain - text"]
    )


def test_message_export_names_the_attachment(owner_client, tenant, two_sessions):
    a, _ = two_sessions
    stored_message(tenant, a, body=None, media={"kind": "image", "filename": "=cat.png", "status": "stored"})
    stored_message(tenant, a, body="no file")
    rows = read_csv(owner_client.get("/messages/export"))
    assert [r[6:9] for r in rows[1:]] == [["no file", "", ""], ["", "image", "'=cat.png"]]


def test_rows_at_the_same_time_across_batches_are_neither_lost_nor_repeated(
    owner_client, tenant, two_sessions, monkeypatch
):
    a, _ = two_sessions
    monkeypatch.setattr("portal.services.exports.stream.BATCH_ROWS", 2)
    at = utcnow().replace(microsecond=0)
    made = [stored_message(tenant, a, body=f"m{i}", created_at=at - timedelta(seconds=i // 3)) for i in range(7)]
    response = owner_client.get("/messages/export")
    chunks = [c.decode() if isinstance(c, bytes) else c for c in response.response]
    assert len(chunks) == 1 + 4  # the header, then one chunk per batch of two
    expected = sorted(made, key=lambda m: (m.created_at, m.id), reverse=True)
    assert ids(list(csv.reader(io.StringIO("".join(chunks))))) == [m.id for m in expected]


def test_message_export_never_holds_another_tenants_rows(owner_client, tenant, log):
    other = make_tenant("globex", name="Globex")
    theirs = new_session(other, "Theirs")
    stored_message(other, theirs, body="secret of globex")
    rows = read_csv(owner_client.get("/messages/export"))
    assert ids(rows) == [m.id for m in reversed(log)]
    assert "secret of globex" not in str(rows)
    assert owner_client.get(f"/messages/export?session={theirs.id}").status_code == 404


def test_message_export_refuses_filters_it_cannot_read(owner_client):
    response = owner_client.get("/messages/export?direction=sideways")
    assert response.status_code == 400


def test_message_export_is_audited_with_its_filters_and_rows(owner_client, tenant, log):
    owner_client.get("/messages/export?direction=out&status=READ").get_data()
    event = audit_service.latest(tenant.id, "export.messages")
    assert event is not None and event.actor_label == "owner@acme.example.com"
    assert event.details == {"format": "csv", "filters": {"direction": "out", "status": "READ"}, "rows": 2}


def test_message_log_link_carries_its_filters(owner_client, two_sessions, log):
    a, _ = two_sessions
    page = owner_client.get(f"/messages/?session={a.id}&direction=out&q=order&since=2020-01-01").get_data(as_text=True)
    path, query = link(page, "log-export")
    assert path == "/messages/export"
    assert query == {"session": [a.id], "direction": ["out"], "q": ["order"], "since": ["2020-01-01"]}


# ---- the audit log ------------------------------------------------------------------------------------------


def _audit_rows(tenant: Any) -> None:
    actor = Actor(type="user", id="1", label="ann@acme.example.com")
    audit_service.record(tenant.id, "token.create", actor, target_type="token", target_id="7", commit=True)
    audit_service.record(
        tenant.id, "token.revoke", actor, target_type="token", target_id="7", details={"why": "=cmd"}, commit=True
    )
    audit_service.record(tenant.id, "session.start", Actor(type="system", label="system"), commit=True)


def test_audit_export_holds_the_rows_the_filtered_page_lists(owner_client, tenant):
    _audit_rows(tenant)
    response = owner_client.get("/admin/audit/export?action=token&actor=ann")
    assert response.status_code == 200 and response.is_streamed
    rows = read_csv(response)
    assert rows[0] == list(exports.AUDIT_COLUMNS)
    filters = audit_service.AuditFilters(action="token", actor="ann")
    assert ids(rows) == [e.id for e in audit_service.list_events(tenant.id, filters)]
    assert [r[2] for r in rows[1:]] == ["token.revoke", "token.create"]
    assert rows[1][10] == '{"why":"=cmd"}'  # JSON starts with "{": nothing to defuse


def test_audit_export_needs_the_audit_permission(login, tenant):
    _audit_rows(tenant)
    operator = login(make_user(tenant, "operator", email="op@acme.example.com"))
    assert operator.get("/admin/audit/export").status_code == 403
    admin = login(make_user(tenant, "admin", email="admin@acme.example.com"))
    assert admin.get("/admin/audit/export").status_code == 200


def test_audit_export_never_holds_another_tenants_events(owner_client, tenant):
    other = make_tenant("globex", name="Globex")
    audit_service.record(other.id, "token.create", Actor(type="user", label="eve@globex"), commit=True)
    rows = read_csv(owner_client.get("/admin/audit/export"))
    assert "eve@globex" not in str(rows)
    tenant_ids = set(db.session.scalars(select(AuditEvent.tenant_id).where(AuditEvent.id.in_(ids(rows)))))
    assert tenant_ids == {tenant.id}


def test_audit_page_link_carries_its_filters(owner_client, tenant):
    _audit_rows(tenant)
    page = owner_client.get("/admin/audit/?action=token&target=7&until=2030-01-01").get_data(as_text=True)
    path, query = link(page, "audit-export")
    assert path == "/admin/audit/export"
    assert query == {"action": ["token"], "target": ["7"], "until": ["2030-01-01"]}


# ---- webhook deliveries ----------------------------------------------------------------------------------------


def _endpoint(tenant: Any, url: str = "https://hooks.example.com/a") -> WebhookEndpoint:
    endpoint = WebhookEndpoint(tenant_id=tenant.id, url=url, events=["*"], secret="whsec_test")
    db.session.add(endpoint)
    db.session.commit()
    return endpoint


def _delivery(tenant: Any, endpoint: WebhookEndpoint, status: str, n: int) -> WebhookDelivery:
    row = WebhookDelivery(
        tenant_id=tenant.id,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        msg_id=f"msg_{n}",
        event_type="message",
        payload={"n": n},
        attempt=1,
        status=status,
        response_status=500 if status == "failed" else 200,
        error="-bad gateway" if status == "failed" else None,
    )
    db.session.add(row)
    db.session.commit()
    return row


def test_delivery_export_holds_one_endpoints_attempts_of_one_status(owner_client, tenant):
    first, second = _endpoint(tenant), _endpoint(tenant, "https://hooks.example.com/b")
    failed = [_delivery(tenant, first, "failed", n) for n in range(2)]
    _delivery(tenant, first, "succeeded", 3)
    _delivery(tenant, second, "failed", 4)
    other = make_tenant("globex", name="Globex")
    _delivery(other, _endpoint(other, "https://globex.example.com/x"), "failed", 5)
    everything = read_csv(owner_client.get("/admin/webhooks/deliveries/export"))
    assert len(everything) == 1 + 4 and "globex.example.com" not in str(everything)
    response = owner_client.get(f"/admin/webhooks/deliveries/export?endpoint_id={first.id}&status=failed")
    assert response.status_code == 200 and response.is_streamed
    rows = read_csv(response)
    assert rows[0] == list(exports.DELIVERY_COLUMNS)
    assert ids(rows) == [d.id for d in reversed(failed)]
    assert rows[1][11] == "'-bad gateway" and rows[1][9] == "500"


def test_delivery_export_refuses_another_tenants_endpoint_and_an_unknown_status(owner_client, tenant):
    theirs = _endpoint(make_tenant("globex", name="Globex"))
    assert owner_client.get(f"/admin/webhooks/deliveries/export?endpoint_id={theirs.id}").status_code == 404
    assert owner_client.get("/admin/webhooks/deliveries/export?status=lost").status_code == 400


def test_delivery_pages_link_carries_the_status_and_endpoint(owner_client, tenant):
    endpoint = _endpoint(tenant)
    _delivery(tenant, endpoint, "failed", 1)
    page = owner_client.get("/admin/webhooks/deliveries?status=failed").get_data(as_text=True)
    assert link(page, "deliveries-export") == ("/admin/webhooks/deliveries/export", {"status": ["failed"]})
    page = owner_client.get(f"/admin/webhooks/{endpoint.id}?status=dead").get_data(as_text=True)
    path, query = link(page, "deliveries-export")
    assert path == "/admin/webhooks/deliveries/export"
    assert query == {"status": ["dead"], "endpoint_id": [str(endpoint.id)]}


# ---- contacts --------------------------------------------------------------------------------------------------


def test_contact_export_holds_the_searched_contacts(owner_client, tenant):
    people = (("491701111111", "Ann", None), ("491702222222", None, "+Annette"), ("4917033", "Bob", ""))
    for chat, saved, push in people:
        db.session.add(
            Contact(tenant_id=tenant.id, chat_id=f"{chat}@c.us", phone=chat, saved_name=saved, push_name=push, tags=[])
        )
    db.session.add(
        Contact(
            tenant_id=tenant.id, chat_id="491703333333@c.us", saved_name="Annie", tags=["vip", "late"], wa_exists=True
        )
    )
    other = make_tenant("globex", name="Globex")
    db.session.add(Contact(tenant_id=other.id, chat_id="491709999999@c.us", saved_name="Anna of Globex", tags=[]))
    db.session.commit()
    response = owner_client.get("/contacts/export?q=ann")
    assert response.status_code == 200 and response.is_streamed
    rows = read_csv(response)
    assert rows[0] == list(exports.CONTACT_COLUMNS)
    assert [r[1:4] for r in rows[1:]] == [
        ["Annie", "", "491703333333@c.us"],
        ["'+Annette", "+491702222222", "491702222222@c.us"],
        ["Ann", "+491701111111", "491701111111@c.us"],
    ]
    assert rows[1][7:9] == ["vip, late", "yes"] and rows[2][7:9] == ["", ""]
    page = owner_client.get("/contacts/?q=ann").get_data(as_text=True)
    assert link(page, "contacts-export") == ("/contacts/export", {"q": ["ann"]})


# ---- who may export ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/messages/export", True),
        ("/contacts/export", True),
        ("/admin/webhooks/deliveries/export", True),
        ("/admin/audit/export", False),
    ],
)
def test_a_viewer_exports_what_a_viewer_may_read(viewer_client, path, allowed):
    assert viewer_client.get(path).status_code == (200 if allowed else 403)


def test_exports_need_a_signed_in_member(client):
    response = client.get("/messages/export")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
