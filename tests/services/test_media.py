"""Inbound media: strict media types, the type a file is served under, and downloads that never stay pending."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db, redis_store
from portal.jobs import RQRunner
from portal.models import Message
from portal.services import events, media
from portal.storage import storage
from tests.builders import make_token, new_session, relay_inbound_media, working_session
from tests.helpers import unreachable_redis

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.mark.parametrize(
    "value, parsed",
    [
        ("image/png", "image/png"),
        ('Video/MP4; codecs="avc1"', "video/mp4"),
        ("video/mp4,text/html", None),
        ("video/mp4, text/html", None),
        ("text/html", "text/html"),
        ("image/", None),
        ("", None),
        (None, None),
        ("video/mp4\ntext/html", None),
        ("video/mp4;x", None),
    ],
)
def test_media_types_are_parsed_strictly(value, parsed):
    assert media.parse_media_type(value) == parsed


@pytest.mark.parametrize("value", ["video/mp4,text/html", "text/html", "image/svg+xml", "application/xhtml+xml"])
def test_only_allow_listed_types_are_served_as_such(value):
    assert media.served_type(value) == media.ServedType("application/octet-stream", False)


@pytest.mark.parametrize(
    "value, kind",
    [
        ("image/png", "image"),
        ("audio/ogg; codecs=opus", "audio"),
        ("video/mp4", "video"),
        ("application/pdf", "document"),
        ("text/plain", "document"),
        ("", "document"),
        (None, "document"),
    ],
)
def test_one_rule_gives_a_file_its_kind(value, kind):
    assert media.media_kind(value) == kind


@pytest.mark.parametrize(
    "filename, given, mimetype",
    [
        ("photo.png", "image/png", "image/png"),
        ("photo.png", "", "image/png"),
        ("photo.png", None, "image/png"),
        ("photo.png", "application/octet-stream", "image/png"),
        ("notes.unknownext", "application/octet-stream", "application/octet-stream"),
        ("", "", "application/octet-stream"),
    ],
)
def test_an_uploaded_file_keeps_the_browsers_type_or_gets_one_from_its_name(filename, given, mimetype):
    sent = media.uploaded_media(PNG, filename, given)
    assert sent["mimetype"] == mimetype
    assert sent["filename"] == (filename or "file")
    assert base64.b64decode(sent["data"]) == PNG


def test_an_uploaded_file_is_sent_as_the_kind_asked_for_else_as_its_type_says():
    assert media.uploaded_media(PNG, "a.png", "image/png")["kind"] == "image"
    assert media.uploaded_media(PNG, "a.png", "image/png", kind="document")["kind"] == "document"


def test_media_to_send_leaves_out_what_was_not_given():
    assert media.outgoing_media(
        kind=None, url="https://files.example/a.pdf", mimetype="application/pdf", caption=""
    ) == {
        "kind": "document",
        "url": "https://files.example/a.pdf",
        "mimetype": "application/pdf",
    }
    assert media.uploaded_media(PNG, "a.png", "image/png", caption="Look")["caption"] == "Look"


def test_inbound_comma_separated_type_is_refused_at_ingest():
    record, url = media.media_record(
        {"hasMedia": True, "media": {"url": "http://waha/x", "mimetype": "video/mp4,text/html"}}
    )
    assert record["status"] == "refused" and url is None


def _stored(tenant: Any, mimetype: str) -> Message:
    session = new_session(tenant, "Media")
    storage().save("t/html.bin", b"<script>alert(1)</script>", mimetype)
    message = Message(
        tenant_id=tenant.id,
        session_id=session.id,
        direction="in",
        source="inbound",
        waha_message_id="false_1@c.us_HTML",
        chat_id="1@c.us",
        media={"status": "stored", "key": "t/html.bin", "mimetype": mimetype},
    )
    db.session.add(message)
    db.session.commit()
    return message


def test_a_file_stored_with_a_comma_separated_type_downloads_as_octet_stream_from_the_api(
    client, tenant, media_backend
):
    message = _stored(tenant, "video/mp4,text/html")
    response = client.get(
        f"/waha/messages/{message.id}/media", headers={"Authorization": f"Bearer {make_token(tenant)}"}
    )
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    storage().delete("t/html.bin")


def test_a_file_stored_with_a_comma_separated_type_is_not_rendered_by_the_portal(login, owner, tenant, media_backend):
    message = _stored(tenant, "video/mp4,text/html")
    response = login(owner).get(f"/messages/{message.id}/media")
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    storage().delete("t/html.bin")


# ---- downloads that cannot be queued


def _inbound_with_media(app: Any, client: Any, tenant: Any, sim: Any) -> tuple[Any, str]:
    session = working_session(tenant, sim, "Pictures")
    return session, relay_inbound_media(client, sim, session, PNG)


def _media_of(message_id: str) -> dict:
    db.session.expire_all()
    return db.session.scalar(select(Message.media).where(Message.waha_message_id == message_id))


def test_media_is_downloaded_at_once_when_its_job_cannot_be_queued(
    app, client, tenant, sim, run_jobs, monkeypatch, media_backend
):
    _session, message_id = _inbound_with_media(app, client, tenant, sim)
    monkeypatch.setitem(
        app.extensions, "portal_jobs", RQRunner(unreachable_redis())
    )  # the queue is down while processing
    events.process_batch()
    monkeypatch.undo()
    stored = _media_of(message_id)
    assert stored["status"] == "stored" and stored["size"] == len(PNG) and "source" not in stored
    storage().delete(stored["key"])


def test_sweeper_requeues_media_left_pending(app, client, tenant, sim, run_jobs, media_backend):
    _session, message_id = _inbound_with_media(app, client, tenant, sim)
    events.process_batch()  # the download job is queued...
    redis_store.client.flushdb()  # ...and lost (Redis restarted without its data)
    assert _media_of(message_id)["status"] == "pending"
    events.sweep(older_than=0)
    run_jobs()
    stored = _media_of(message_id)
    assert stored["status"] == "stored"
    storage().delete(stored["key"])


def test_sweeper_leaves_a_download_whose_job_still_waits_in_the_queue(app, client, tenant, sim, run_jobs):
    from rq import Queue

    from portal.queue import JOB_FETCH_MEDIA

    _session, message_id = _inbound_with_media(app, client, tenant, sim)
    events.process_batch()  # the download job is queued and waits behind a backlog
    waiting = Queue("events", connection=redis_store.client)
    row_id = db.session.scalar(select(Message.id).where(Message.waha_message_id == message_id))

    def downloads() -> int:
        jobs = [waiting.fetch_job(job_id) for job_id in waiting.job_ids]
        return sum(1 for job in jobs if job is not None and job.func_name == JOB_FETCH_MEDIA and job.args[0] == row_id)

    assert downloads() == 1
    events.sweep(older_than=0)
    events.sweep(older_than=0)

    assert downloads() == 1  # not queued again while its job may still run
    run_jobs()
    stored = _media_of(message_id)
    assert stored["status"] == "stored"
    storage().delete(stored["key"])


def test_a_download_lost_with_its_worker_is_queued_again_while_waha_still_has_the_file(
    app, client, tenant, sim, run_jobs
):
    from rq import Queue

    from portal.jobs.schedule import DEFAULT_SETTINGS
    from portal.queue import JOB_FETCH_MEDIA
    from wahasim.settings import Settings

    _session, message_id = _inbound_with_media(app, client, tenant, sim)
    events.process_batch()  # the download job is queued ...
    waiting = Queue("events", connection=redis_store.client)
    waiting.empty()  # ... and taken by a worker that died with it
    row_id = db.session.scalar(select(Message.id).where(Message.waha_message_id == message_id))
    mark = redis_store.client.ttl(f"media-queued:{row_id}")

    def downloads() -> int:
        jobs = [waiting.fetch_job(job_id) for job_id in waiting.job_ids]
        return sum(1 for job in jobs if job is not None and job.func_name == JOB_FETCH_MEDIA and job.args[0] == row_id)

    # The sweeper queues it again once the mark is gone; WAHA (180 s, as the simulator) must still have the file.
    assert 0 < mark + DEFAULT_SETTINGS["EVENTS_SWEEP_INTERVAL"] < Settings().files_lifetime
    events.sweep(older_than=0)
    assert downloads() == 0  # the mark still stands: its job may still run somewhere
    redis_store.client.delete(f"media-queued:{row_id}")  # the mark's time has passed
    events.sweep(older_than=0)
    assert downloads() == 1
    run_jobs()

    stored = _media_of(message_id)
    assert stored["status"] == "stored"
    storage().delete(stored["key"])
