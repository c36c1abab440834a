"""sendAt on the uploaded-file send (POST /waha/sessions/<id>/send/media): 202, listed, changed, cancelled, the
file kept in the store until the message is sent (then deleted), and another tenant's item is a 404."""

from __future__ import annotations

import base64
import io
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import update

from portal.extensions import db
from portal.models import QueuedSend, utcnow
from portal.services import outreach
from portal.storage import storage
from tests.helpers import Api

TO = "+491701234567"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _at(delta: timedelta) -> str:
    return (utcnow() + delta).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _schedule(api: Api, session: dict[str, Any], **form: Any) -> Any:
    data = {"file": (io.BytesIO(PNG), "photo.png", "image/png"), "to": TO, "caption": "Later", **form}
    data.setdefault("sendAt", _at(timedelta(hours=1)))
    return api.post(f"/waha/sessions/{session['id']}/send/media", data=data, content_type="multipart/form-data")


def _row(item_id: int) -> QueuedSend:
    db.session.expire_all()
    row = db.session.get(QueuedSend, item_id)
    assert row is not None
    return row


def test_send_at_on_an_upload_answers_202_keeps_the_file_in_the_store_and_sends_nothing_now(api, sim, working_session):
    response = _schedule(api, working_session)

    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert (body["state"], body["hasMedia"], body["text"]) == ("queued", True, "Later")  # a file's text is its caption
    assert [i["id"] for i in api.get("/waha/scheduled").get_json()["data"]] == [body["id"]]
    media = _row(body["id"]).media
    assert "data" not in media
    assert (media["kind"], media["caption"], media["filename"]) == ("image", "Later", "photo.png")
    with storage().open(media["held"]) as handle:
        assert handle.read() == PNG
    assert sim.sent_messages(working_session["externalSessionId"]) == []


def test_a_scheduled_upload_is_sent_at_its_time_and_its_file_deleted(api, sim, working_session):
    item = _schedule(api, working_session).get_json()
    key = _row(item["id"]).media["held"]
    db.session.execute(update(QueuedSend).where(QueuedSend.id == item["id"]).values(not_before=utcnow()))
    db.session.commit()

    outreach.run(working_session["id"], run_for=10, nap_max=0.5)

    done = api.get(f"/waha/scheduled/{item['id']}").get_json()
    assert done["state"] == "sent", done
    sent = sim.sent_messages(working_session["externalSessionId"])
    assert [(s["kind"], s["body"]) for s in sent] == [("image", "Later")]
    message = api.get(f"/waha/messages/{done['messageId']}").get_json()
    assert (message["media"]["kind"], message["media"]["filename"]) == ("image", "photo.png")
    assert not storage().exists(key)


def test_a_scheduled_upload_can_be_moved_and_cancelled_and_its_file_goes_with_it(api, working_session):
    item = _schedule(api, working_session).get_json()
    key = _row(item["id"]).media["held"]

    moved = api.patch(f"/waha/scheduled/{item['id']}", json={"sendAt": _at(timedelta(days=2))})
    assert moved.status_code == 200, moved.get_json()
    assert storage().exists(key)
    cancelled = api.delete(f"/waha/scheduled/{item['id']}")
    assert (cancelled.status_code, cancelled.get_json()["state"]) == (200, "cancelled")
    assert not storage().exists(key)


def test_a_repeat_with_the_same_key_answers_the_first_item_and_stores_one_file(api, working_session):
    at = _at(timedelta(hours=3))
    headers = {"Idempotency-Key": "upload-later-1"}
    url = f"/waha/sessions/{working_session['id']}/send/media"

    def post() -> Any:
        data = {"file": (io.BytesIO(PNG), "photo.png", "image/png"), "to": TO, "sendAt": at}
        return api.post(url, data=data, content_type="multipart/form-data", headers=headers)

    before = set(storage().list_keys())
    first, again = post(), post()

    assert (first.status_code, again.status_code) == (202, 202)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert len(api.get("/waha/scheduled").get_json()["data"]) == 1
    assert set(storage().list_keys()) - before == {_row(first.get_json()["id"]).media["held"]}


def test_a_bad_send_at_on_an_upload_is_400_and_nothing_is_queued(api, working_session):
    for bad in ("tomorrow", "2030-01-01T10:00:00", _at(timedelta(minutes=-5)), _at(timedelta(days=400))):
        response = _schedule(api, working_session, sendAt=bad)
        assert response.status_code == 400, bad
        fields = [f["field"] for f in response.get_json()["error"]["details"]["fields"]]
        assert fields == ["sendAt"], (bad, fields)
    assert api.get("/waha/scheduled").get_json()["data"] == []


def test_another_tenants_scheduled_upload_is_not_found(api, other_api, working_session):
    item = _schedule(api, working_session).get_json()

    assert other_api.get(f"/waha/scheduled/{item['id']}").status_code == 404
    assert other_api.delete(f"/waha/scheduled/{item['id']}").status_code == 404
    assert _schedule(other_api, working_session).status_code == 404
    assert api.get(f"/waha/scheduled/{item['id']}").get_json()["state"] == "queued"


def test_deleting_the_session_deletes_its_scheduled_files(api, working_session):
    item = _schedule(api, working_session).get_json()
    key = _row(item["id"]).media["held"]

    assert api.delete(f"/waha/sessions/{working_session['id']}").status_code == 204

    assert not storage().exists(key)
