"""The send queue's pages over HTTP: the queue of a session (live block, pause / resume, cancel one, clear
campaign traffic), scheduled messages from the send page and the composer (list, change, cancel), the outreach
settings; CSRF, viewers read only, another tenant's session or message is a 404."""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date, format_time
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Chat, OutreachSettings, QueuedSend, utcnow
from portal.services import outreach
from tests.builders import TEST_ACTOR, make_tenant, make_user, working_session
from tests.helpers import csrf_token, quiet_waha_webhooks

CHAT = "491709999999@c.us"
HX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def _quiet(app: Any) -> Any:
    with quiet_waha_webhooks(app):
        yield


@pytest.fixture
def working(tenant: Any, sim: Any) -> Any:
    return working_session(tenant, sim)


def _post(client: Any, url: str, **data: Any) -> Any:
    return client.post(url, data={**data, "csrf_token": csrf_token(client, "/messages/")})


def _campaign(tenant: Any, session: Any, count: int) -> None:
    outreach.enqueue_many(
        tenant,
        [{"session_id": session.id, "chat_id": CHAT, "body": f"offer {n}"} for n in range(count)],
        actor=TEST_ACTOR,
    )


def _actions(tenant: Any) -> set[str]:
    return set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant.id)))


def test_queue_page_lists_items_in_order_with_eta_and_lanes(owner_client, tenant, working):
    outreach.pause_session(tenant, working.id, TEST_ACTOR)
    _campaign(tenant, working, 2)
    outreach.enqueue(tenant, working.id, CHAT, body="receipt 42", actor=TEST_ACTOR)

    page = owner_client.get(f"/outreach/sessions/{working.id}").get_data(as_text=True)

    assert "3 messages waiting" in page and "The queue is paused" in page
    assert page.index("receipt 42") < page.index("offer 0") < page.index("offer 1")
    assert "Resume sending" in page and "Clear campaign traffic" in page


def test_live_block_answers_204_until_something_changes(owner_client, tenant, working):
    outreach.pause_session(tenant, working.id, TEST_ACTOR)
    first = owner_client.get(f"/outreach/sessions/{working.id}/live", headers=HX)
    version = first.get_data(as_text=True).split('"v": "', 1)[1].split('"', 1)[0]

    same = owner_client.get(f"/outreach/sessions/{working.id}/live?v={version}", headers=HX)
    outreach.enqueue(tenant, working.id, CHAT, body="new one", actor=TEST_ACTOR)
    changed = owner_client.get(f"/outreach/sessions/{working.id}/live?v={version}", headers=HX)

    assert first.status_code == 200 and "<html" not in first.get_data(as_text=True)
    assert same.status_code == 204
    assert changed.status_code == 200 and "new one" in changed.get_data(as_text=True)


def test_pause_resume_cancel_and_clear_are_audited(owner_client, tenant, working):
    outreach.pause_session(tenant, working.id, TEST_ACTOR)
    one = outreach.enqueue(tenant, working.id, CHAT, body="single", actor=TEST_ACTOR)
    _campaign(tenant, working, 3)
    base = f"/outreach/sessions/{working.id}"

    assert _post(owner_client, f"{base}/items/{one.id}/cancel").status_code == 303
    confirm = owner_client.get(f"{base}/clear").get_data(as_text=True)
    assert "3 campaign messages are waiting" in confirm
    assert _post(owner_client, f"{base}/clear").status_code == 303
    assert _post(owner_client, f"{base}/resume").status_code == 303

    db.session.expire_all()
    states = {i.body: i.state for i in db.session.scalars(select(QueuedSend))}
    assert states == {"single": "cancelled", "offer 0": "cancelled", "offer 1": "cancelled", "offer 2": "cancelled"}
    assert {"outreach.cancel", "outreach.clear_campaign", "outreach.resume"} <= _actions(tenant)


def test_actions_need_csrf_and_the_send_permission(owner_client, login, tenant, working):
    item = outreach.enqueue(
        tenant, working.id, CHAT, body="x", not_before=utcnow() + timedelta(hours=1), actor=TEST_ACTOR
    )
    viewer = login(make_user(tenant, "viewer", email="viewer@acme.example.com"))

    no_token = owner_client.post(f"/outreach/sessions/{working.id}/items/{item.id}/cancel")
    as_viewer = _post(viewer, f"/outreach/sessions/{working.id}/pause")
    viewer_page = viewer.get(f"/outreach/sessions/{working.id}").get_data(as_text=True)

    assert no_token.status_code == 400 and as_viewer.status_code == 403
    assert "Pause sending" not in viewer_page and ">Cancel<" not in viewer_page
    db.session.expire_all()
    assert db.session.get(QueuedSend, item.id).state == "queued"


def test_another_tenants_queue_and_items_are_404(login, tenant, working):
    item = outreach.enqueue(
        tenant, working.id, CHAT, body="x", not_before=utcnow() + timedelta(hours=1), actor=TEST_ACTOR
    )
    other = login(make_user(make_tenant("globex"), "owner", email="owner@globex.example.com"))

    assert other.get(f"/outreach/sessions/{working.id}").status_code == 404
    assert _post(other, f"/outreach/sessions/{working.id}/pause").status_code == 404
    assert _post(other, f"/outreach/sessions/{working.id}/items/{item.id}/cancel").status_code == 404
    assert other.get(f"/outreach/scheduled/{item.id}").status_code == 404
    assert _post(other, f"/outreach/scheduled/{item.id}/cancel").status_code == 404


def test_send_page_schedules_for_a_local_time(owner_client, tenant, working, sim):
    db.session.add(OutreachSettings(tenant_id=tenant.id, time_zone="Asia/Tokyo", gap_min=3, gap_max=8))
    db.session.commit()
    local = (utcnow() + timedelta(days=1)).astimezone(ZoneInfo("Asia/Tokyo")).replace(second=0, microsecond=0)
    token = csrf_token(owner_client, "/messages/send")

    response = owner_client.post(
        "/messages/send",
        data={
            "csrf_token": token,
            "session_id": working.id,
            "to": "+49 170 9999999",
            "text": "see you tomorrow",
            "media_kind": "",
            "send_at": local.strftime("%Y-%m-%dT%H:%M"),
        },
        content_type="multipart/form-data",
    )

    assert response.status_code == 303
    item = db.session.scalar(select(QueuedSend))
    assert (item.scheduled, item.body, item.state) == (True, "see you tomorrow", "queued")
    assert item.not_before == local.astimezone(ZoneInfo("UTC"))
    assert sim.sent_messages(working.external_name) == []
    listing = owner_client.get("/outreach/scheduled").get_data(as_text=True)
    shown = f"{format_date(local, 'medium', locale='en')} {format_time(local, 'short', locale='en')} JST"
    assert "see you tomorrow" in listing and shown in html.unescape(listing)


def test_send_page_schedules_a_file_and_keeps_it_in_the_store_until_sent(owner_client, tenant, working, sim):
    import io

    from portal.storage import storage

    local = (utcnow() + timedelta(hours=2)).replace(second=0, microsecond=0)
    token = csrf_token(owner_client, "/messages/send")

    response = owner_client.post(
        "/messages/send",
        data={
            "csrf_token": token,
            "session_id": working.id,
            "to": "+49 170 9999999",
            "text": "the invoice",
            "media_kind": "",
            "media_file": (io.BytesIO(b"%PDF-1.4 invoice"), "invoice.pdf", "application/pdf"),
            "send_at": local.strftime("%Y-%m-%dT%H:%M"),
        },
        content_type="multipart/form-data",
    )

    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    item = db.session.scalar(select(QueuedSend))
    assert (item.scheduled, item.state, item.media["kind"], item.media["caption"]) == (
        True,
        "queued",
        "document",
        "the invoice",
    )
    assert "data" not in item.media
    with storage().open(item.media["held"]) as handle:
        assert handle.read() == b"%PDF-1.4 invoice"
    assert sim.sent_messages(working.external_name) == []


def test_composer_send_later_answers_202_and_queues(owner_client, tenant, working):
    chat = Chat(tenant_id=tenant.id, session_id=working.id, chat_id=CHAT, name="Ana")
    db.session.add(chat)
    db.session.commit()
    when = (datetime.now() + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")

    response = owner_client.post(
        f"/inbox/chats/{chat.id}/send",
        data={"text": "later please", "send_at": when, "idempotency_key": "k1"},
        headers={"X-CSRFToken": csrf_token(owner_client, "/messages/")},
    )
    past = owner_client.post(
        f"/inbox/chats/{chat.id}/send",
        data={"text": "too late", "send_at": "2001-01-01T10:00", "idempotency_key": "k2"},
        headers={"X-CSRFToken": csrf_token(owner_client, "/messages/")},
    )

    assert response.status_code == 202 and "Scheduled for" in response.get_data(as_text=True)
    assert past.status_code == 400 and "future" in past.get_data(as_text=True)
    assert [i.body for i in db.session.scalars(select(QueuedSend))] == ["later please"]


def test_scheduled_message_is_changed_and_cancelled_from_the_list(owner_client, tenant, working):
    item = outreach.schedule_message(
        tenant, working.id, TEST_ACTOR, to=CHAT, text="first", send_at=utcnow() + timedelta(hours=2)
    )
    when = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")  # the tenant's zone is UTC

    form = owner_client.get(f"/outreach/scheduled/{item.id}").get_data(as_text=True)
    changed = _post(owner_client, f"/outreach/scheduled/{item.id}", send_at=when, text="second")
    refused = _post(owner_client, f"/outreach/scheduled/{item.id}", send_at="2001-01-01T00:00", text="second")
    cancelled = _post(owner_client, f"/outreach/scheduled/{item.id}/cancel")

    assert 'name="send_at"' in form and changed.status_code == 303
    assert refused.status_code == 400 and "future" in refused.get_data(as_text=True)
    assert cancelled.status_code == 303
    db.session.expire_all()
    row = db.session.get(QueuedSend, item.id)
    assert (row.body, row.state, row.not_before.strftime("%Y-%m-%dT%H:%M")) == ("second", "cancelled", when)
    assert {"message.schedule_update", "outreach.cancel"} <= _actions(tenant)


def test_the_scheduled_list_says_each_state_and_what_holds_it_in_words(owner_client, tenant, working):
    def scheduled(text: str, state: str, last_error: str | None) -> None:
        item = outreach.schedule_message(
            tenant, working.id, TEST_ACTOR, to=CHAT, text=text, send_at=utcnow() + timedelta(hours=2)
        )
        item.state, item.last_error = state, last_error
        db.session.commit()

    scheduled("retried", "queued", "waha_unavailable: WAHA failed repeatedly, so calls to it are paused for a moment.")
    scheduled("opted", "skipped", "opted_out")
    scheduled("broken", "failed", "validation_error: A caption must be at most 1024 characters.")

    listing = html.unescape(owner_client.get("/outreach/scheduled").get_data(as_text=True))
    rows = {text: row for row in listing.split("<tr") for text in ("retried", "opted", "broken") if text in row}

    # the state cell of each row (the tabs above name the states too)
    assert (
        "Waiting" in rows["retried"]
        and "The WhatsApp server could not be reached; it is tried again." in rows["retried"]
    )
    assert "Skipped" in rows["opted"] and "The recipient opted out of your messages." in rows["opted"]
    assert "Failed" in rows["broken"] and "Not sent: A caption must be at most 1024 characters." in rows["broken"]
    for code in ("waha_unavailable", "opted_out", "validation_error", "WAHA failed"):
        assert code not in listing


def test_outreach_settings_are_saved_and_checked(owner_client, tenant):
    saved = _post(
        owner_client,
        "/admin/outreach/",
        time_zone="Europe/Berlin",
        quiet_start="21:00",
        quiet_end="08:00",
        gap_min="4",
        gap_max="9",
    )
    refused = _post(owner_client, "/admin/outreach/", time_zone="Mars/Olympus", gap_min="9", gap_max="4")

    assert saved.status_code == 302 and refused.status_code == 400
    settings = outreach.outreach_settings(tenant.id)
    assert (settings.time_zone, settings.quiet_start.hour, settings.quiet_end.hour) == ("Europe/Berlin", 21, 8)
    assert (settings.gap_min, settings.gap_max) == (4.0, 9.0)
    assert "outreach.settings" in _actions(tenant)
