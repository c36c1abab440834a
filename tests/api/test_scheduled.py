"""Scheduled messages over /waha: sendAt on a send (202), the list, change and cancel; tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from portal.extensions import db
from portal.models import QueuedSend, utcnow
from portal.services import audit
from tests.helpers import Api

TO = "+491701234567"


def _at(delta: timedelta) -> str:
    return (utcnow() + delta).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _schedule(api: Api, session: dict[str, Any], delta: timedelta = timedelta(hours=1), **body: Any) -> Any:
    return api.post(
        f"/waha/sessions/{session['id']}/send", json={"to": TO, "text": "Later", "sendAt": _at(delta), **body}
    )


def test_send_at_answers_202_with_the_scheduled_message_and_sends_nothing_now(api, sim, working_session):
    response = _schedule(api, working_session)

    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert (body["state"], body["chatId"], body["text"], body["late"]) == (
        "queued",
        "491701234567@c.us",
        "Later",
        False,
    )
    assert datetime.fromisoformat(body["sendAt"]) > utcnow() + timedelta(minutes=59)
    assert sim.sent_messages(working_session["externalSessionId"]) == []


def test_send_at_must_be_in_the_future_and_within_a_year(api, working_session):
    for delta in (timedelta(minutes=-1), timedelta(days=400)):
        response = _schedule(api, working_session, delta)
        assert response.status_code == 400
        assert response.get_json()["error"]["details"]["fields"][0]["field"] == "sendAt"
    no_offset = api.post(
        f"/waha/sessions/{working_session['id']}/send", json={"to": TO, "text": "x", "sendAt": "2030-01-01T10:00:00"}
    )
    assert no_offset.status_code == 400
    assert api.get("/waha/scheduled").get_json()["data"] == []


def test_a_repeat_with_the_same_key_answers_the_same_scheduled_message(api, working_session):
    at = _at(timedelta(hours=2))
    body = {"to": TO, "text": "Once", "sendAt": at}
    headers = {"Idempotency-Key": "sched-1"}
    first = api.post(f"/waha/sessions/{working_session['id']}/send", json=body, headers=headers)
    again = api.post(f"/waha/sessions/{working_session['id']}/send", json=body, headers=headers)
    other = api.post(f"/waha/sessions/{working_session['id']}/send", json={**body, "text": "Twice"}, headers=headers)

    assert (first.status_code, again.status_code) == (202, 202)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert other.status_code == 409
    assert len(api.get("/waha/scheduled").get_json()["data"]) == 1


def test_one_key_names_one_request_whether_sent_now_or_scheduled(api, sim, working_session):
    path = f"/waha/sessions/{working_session['id']}/send"
    now = api.post(path, json={"to": TO, "text": "Now"}, headers={"Idempotency-Key": "k-now"})
    later = api.post(
        path,
        json={"to": TO, "text": "Later", "sendAt": _at(timedelta(hours=1))},
        headers={"Idempotency-Key": "k-later"},
    )
    assert (now.status_code, later.status_code) == (200, 202)

    schedule_after_send = api.post(
        path, json={"to": TO, "text": "Now", "sendAt": _at(timedelta(hours=1))}, headers={"Idempotency-Key": "k-now"}
    )
    send_after_schedule = api.post(path, json={"to": TO, "text": "Later"}, headers={"Idempotency-Key": "k-later"})

    for refused in (schedule_after_send, send_after_schedule):
        assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "idempotency_key_reused")
    assert len(api.get("/waha/scheduled").get_json()["data"]) == 1
    assert [m["body"] for m in sim.sent_messages(working_session["externalSessionId"])] == ["Now"]


def test_a_changed_text_follows_the_caption_rules_of_the_file_it_goes_with(api, working_session):
    document = _schedule(
        api, working_session, text=None, media={"type": "document", "url": "https://example.com/a.pdf"}
    )
    voice = _schedule(api, working_session, text=None, media={"type": "audio", "url": "https://example.com/v.ogg"})
    assert (document.status_code, voice.status_code) == (202, 202), (document.get_json(), voice.get_json())

    too_long = api.patch(f"/waha/scheduled/{document.get_json()['id']}", json={"text": "x" * 1025})
    on_voice = api.patch(f"/waha/scheduled/{voice.get_json()['id']}", json={"text": "caption on a voice note"})

    for refused in (too_long, on_voice):
        assert refused.status_code == 400
        assert refused.get_json()["error"]["details"]["fields"][0]["field"] == "text"
    assert api.get(f"/waha/scheduled/{voice.get_json()['id']}").get_json()["text"] is None
    fits = api.patch(f"/waha/scheduled/{document.get_json()['id']}", json={"text": "x" * 1024})
    assert fits.status_code == 200 and fits.get_json()["text"] == "x" * 1024


def test_a_scheduled_files_caption_is_checked_when_given_and_changed_in_place(api, working_session):
    image = {"type": "image", "url": "https://example.com/a.jpg"}
    too_long = _schedule(api, working_session, text="x" * 1025, media=image)
    assert too_long.status_code == 400 and too_long.get_json()["error"]["details"]["fields"][0]["field"] == "text"

    captioned = _schedule(api, working_session, text=None, media={**image, "caption": "cap"})
    assert captioned.status_code == 202 and captioned.get_json()["text"] == "cap"
    path = f"/waha/scheduled/{captioned.get_json()['id']}"
    changed = api.patch(path, json={"text": "the new caption"})
    refused = api.patch(path, json={"text": "y" * 1025})

    assert changed.status_code == 200 and changed.get_json()["text"] == "the new caption"
    assert refused.status_code == 400
    item = db.session.get(QueuedSend, captioned.get_json()["id"])
    db.session.refresh(item)
    assert (item.body, item.media["caption"]) == (None, "the new caption")  # what the send will use


def test_metadata_and_opt_out_overrides_are_refused_with_send_at_not_dropped(api, working_session):
    for extra, field in (({"metadata": {"order": "A1"}}, "metadata"), ({"ignoreOptOut": True}, "ignoreOptOut")):
        response = _schedule(api, working_session, **extra)
        assert response.status_code == 400
        assert response.get_json()["error"]["details"]["fields"][0]["field"] == field
    assert api.get("/waha/scheduled").get_json()["data"] == []


def test_a_client_key_cannot_take_the_form_of_the_portals_own(api, sim, working_session):
    # the send queue sends under "queue-<item id>": a client's key of that form would answer for its sends
    path = f"/waha/sessions/{working_session['id']}/send"
    for key in ("queue-19", "Queue-7", "opt-out-confirm-3"):
        refused = api.post(path, json={"to": TO, "text": "mine"}, headers={"Idempotency-Key": key})
        assert refused.status_code == 400
        assert refused.get_json()["error"]["details"]["fields"][0]["field"] == "Idempotency-Key"
    assert sim.sent_messages(working_session["externalSessionId"]) == []
    assert (
        api.post(path, json={"to": TO, "text": "mine"}, headers={"Idempotency-Key": "my-queue-19"}).status_code == 200
    )


def test_list_filters_and_pages(api, working_session):
    ids = [_schedule(api, working_session, timedelta(hours=n + 1)).get_json()["id"] for n in range(3)]

    first = api.get("/waha/scheduled?limit=2").get_json()
    second = api.get(f"/waha/scheduled?limit=2&cursor={first['nextCursor']}").get_json()
    assert [i["id"] for i in first["data"] + second["data"]] == ids[::-1]
    assert second["nextCursor"] is None
    due_soon = api.get("/waha/scheduled", query_string={"until": _at(timedelta(minutes=90))}).get_json()["data"]
    assert [i["id"] for i in due_soon] == [ids[0]]
    assert api.get("/waha/scheduled?state=sent").get_json()["data"] == []
    assert api.get("/waha/scheduled?state=nonsense").status_code == 400


@pytest.mark.smoke
def test_change_then_cancel(api, tenant, working_session):
    item = _schedule(api, working_session).get_json()
    later = _at(timedelta(days=2))

    changed = api.patch(f"/waha/scheduled/{item['id']}", json={"sendAt": later, "text": "Changed"})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["text"] == "Changed"
    assert datetime.fromisoformat(changed.get_json()["sendAt"]) > utcnow() + timedelta(days=1)
    assert api.patch(f"/waha/scheduled/{item['id']}", json={"sendAt": _at(timedelta(days=-1))}).status_code == 400

    cancelled = api.delete(f"/waha/scheduled/{item['id']}")
    assert (cancelled.status_code, cancelled.get_json()["state"]) == (200, "cancelled")
    again = api.delete(f"/waha/scheduled/{item['id']}")
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "not_cancellable")
    refused = api.patch(f"/waha/scheduled/{item['id']}", json={"text": "x"})
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "not_editable")
    assert audit.latest(tenant.id, "message.schedule_update") is not None
    assert audit.latest(tenant.id, "outreach.cancel").target_id == str(item["id"])


def test_another_tenants_scheduled_message_is_not_found(api, other_api, working_session):
    item = _schedule(api, working_session).get_json()

    missing = other_api.get(f"/waha/scheduled/{item['id']}")
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "scheduled_message_not_found")
    assert other_api.patch(f"/waha/scheduled/{item['id']}", json={"text": "x"}).status_code == 404
    assert other_api.delete(f"/waha/scheduled/{item['id']}").status_code == 404
    assert other_api.get("/waha/scheduled").get_json()["data"] == []
    assert _schedule(other_api, working_session).status_code == 404
    # filtering by another tenant's session is answered as the other lists answer it: no such session
    for session_id in (working_session["id"], "no-such-session"):
        by_session = other_api.get("/waha/scheduled", query_string={"sessionId": session_id})
        assert (by_session.status_code, by_session.get_json()["error"]["code"]) == (404, "session_not_found")
    assert len(api.get("/waha/scheduled", query_string={"sessionId": working_session["id"]}).get_json()["data"]) == 1
