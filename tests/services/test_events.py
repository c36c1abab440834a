"""services.events without a worker: signature vectors, parsing, a session row still committing, replay, sweep,
and the media download function the API and pages call."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from portal.extensions import db
from portal.models import Message, WahaSession, WebhookEvent
from portal.services import events
from portal.services.errors import Invalid, NotFound
from portal.storage import storage
from tests.builders import envelope, inbound_payload, make_tenant, new_session, post_events
from tests.helpers import quiet_waha_webhooks

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "waha"


@pytest.fixture(autouse=True)
def _quiet(app: Any) -> Any:
    with quiet_waha_webhooks(app):
        yield


@pytest.mark.parametrize(
    "vector", json.loads((FIXTURES / "webhook.hmac-vectors.json").read_text())["vectors"], ids=lambda v: v["name"][:30]
)
def test_signature_of_contract_vectors_is_accepted(vector):
    body = vector["raw_body"].encode("utf-8")
    assert events.signature_ok(vector["key"].encode(), body, vector["x_webhook_hmac"])
    assert not events.signature_ok(vector["key"].encode(), body + b" ", vector["x_webhook_hmac"])
    assert not events.signature_ok(b"other key", body, vector["x_webhook_hmac"])


@pytest.mark.parametrize("body", [b'{"event":"message"}', b'[{"event":"a"},{"event":"b"}]'])
def test_parse_events_accepts_an_event_or_an_array(body):
    assert [e["event"] for e in events.parse_events(body)] == [
        e["event"] for e in (json.loads(body) if body[:1] == b"[" else [json.loads(body)])
    ]


@pytest.mark.parametrize("body", [b"", b"[]", b"42", b'{"no":"name"}', b'[{"event":"a"}, 3]', b"\xff"])
def test_parse_events_refuses_what_is_not_events(body):
    with pytest.raises(Invalid):
        events.parse_events(body)


def test_event_arriving_while_its_session_row_commits_is_kept_for_the_session(app, tenant, client):
    """WAHA sends a new session's first status before the portal's create has committed the row."""
    template = new_session(tenant, "Template")
    session_id = "7d8e2b8e-1f7a-4c55-9a4e-3f6f3b0c1a2d"
    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(
            sa.text(
                "INSERT INTO waha_sessions (id, tenant_id, server_id, name, external_name, status, desired_state, "
                "webhook_events, config, hmac_key, created_at, updated_at) SELECT :id, tenant_id, server_id, 'New', "
                "'new_one', 'STARTING', 'running', webhook_events, config, hmac_key, now(), now() FROM waha_sessions "
                "WHERE id = :template"
            ),
            {"id": session_id, "template": template.id},
        )
        threading.Timer(0.1, trans.commit).start()
        fake = WahaSession(id=session_id, tenant_id=tenant.id, external_name="new_one", hmac_key=template.hmac_key)
        response = post_events(
            client, fake, envelope(fake, "session.status", {"name": "new_one", "status": "STARTING"})
        )
        time.sleep(0.2)
    engine.dispose()
    assert response.status_code == 200
    db.session.expire_all()
    row = db.session.scalar(select(WebhookEvent).where(WebhookEvent.session_name == "new_one"))
    assert (row.status, row.session_id) == ("pending", session_id)


def test_replay_applies_an_event_again_without_a_second_message(client, tenant):
    session = new_session(tenant, "Replay")
    body = envelope(session, "message", inbound_payload("again"))
    post_events(client, session, body)
    events.drain()
    events.replay_event(body["id"])
    assert db.session.scalar(select(WebhookEvent.status).where(WebhookEvent.event_id == body["id"])) == "pending"
    events.drain()
    db.session.expire_all()
    assert db.session.scalar(select(sa.func.count()).select_from(Message)) == 1
    assert db.session.scalar(select(WebhookEvent.status).where(WebhookEvent.event_id == body["id"])) == "done"


def test_replay_of_an_unknown_event_is_not_found(ctx):
    with pytest.raises(NotFound):
        events.replay_event("evt_nope")


def test_sweep_ignores_pending_events_of_a_deleted_session(client, tenant):
    session = new_session(tenant, "Gone")
    body = envelope(session, "message", inbound_payload())
    post_events(client, session, body)
    db.session.execute(sa.delete(WahaSession).where(WahaSession.id == session.id))
    db.session.commit()
    events.sweep(older_than=0)
    assert db.session.scalar(select(WebhookEvent.status).where(WebhookEvent.event_id == body["id"])) == "ignored"


def _stored_message(tenant: Any, media: dict[str, Any]) -> Message:
    session = new_session(tenant, f"Media {tenant.slug}")
    message = Message(
        tenant_id=tenant.id,
        session_id=session.id,
        direction="in",
        source="inbound",
        waha_message_id=f"false_1@c.us_{tenant.slug}",
        chat_id="1@c.us",
        media=media,
    )
    db.session.add(message)
    db.session.commit()
    return message


def test_media_of_another_tenants_message_is_not_found(tenant, media_backend):
    storage().save("x/one.png", b"png", "image/png")
    message = _stored_message(tenant, {"status": "stored", "key": "x/one.png", "mimetype": "image/png"})
    other = make_tenant("other")
    with pytest.raises(NotFound) as error:
        events.media_for_message(other, message.id)
    assert error.value.code == "message_not_found"
    storage().delete("x/one.png")


@pytest.mark.parametrize(
    "media",
    [
        None,
        {"status": "pending"},
        {"status": "refused", "reason": "type"},
        {"status": "stored", "key": "x/missing.png"},
    ],
)
def test_message_without_a_stored_file_has_no_media(tenant, media, media_backend):
    message = _stored_message(tenant, media)
    with pytest.raises(NotFound) as error:
        events.media_for_message(tenant, message.id)
    assert error.value.code == "media_not_found"


def test_stored_media_comes_back_with_type_and_name(tenant, media_backend):
    storage().save("x/two.pdf", b"%PDF-1.4", "application/pdf")
    message = _stored_message(
        tenant, {"status": "stored", "key": "x/two.pdf", "mimetype": "application/pdf", "filename": "../../invoice.pdf"}
    )
    handle, mimetype, filename = events.media_for_message(tenant, message.id)
    with handle:
        assert handle.read() == b"%PDF-1.4"
    assert (mimetype, filename) == ("application/pdf", "invoice.pdf")
    storage().delete("x/two.pdf")


def test_two_workers_never_claim_the_same_session(app, client, tenant):
    first, second = new_session(tenant, "First"), new_session(tenant, "Second")
    for session in (first, second, first, second):
        post_events(client, session, envelope(session, "message", inbound_payload()))
    claimed: dict[str, set] = {}
    holding, release = threading.Barrier(2), threading.Event()

    def worker(name: str) -> None:
        with app.app_context():
            rows = events._claim(2, set())  # each claim covers two events: one session's worth
            claimed[name] = {row.session_id for row in rows}
            holding.wait(timeout=5)
            release.wait(timeout=5)
            db.session.rollback()
            db.session.remove()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    release.set()
    for thread in threads:
        thread.join()
    assert claimed["a"] and claimed["b"] and not claimed["a"] & claimed["b"]
    assert claimed["a"] | claimed["b"] == {first.id, second.id}
