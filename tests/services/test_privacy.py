"""Data protection at the service level: retention per kind, a person's export and erase (also while their
messages keep arriving), the tenant's export and its deletion with a grace period. Real PostgreSQL, Redis and
storage; WAHA is the simulator."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import (
    AuditEvent,
    Campaign,
    CampaignRecipient,
    Chat,
    ChatNote,
    Contact,
    IdempotencyRecord,
    Message,
    OptOut,
    QueuedSend,
    Tenant,
    TenantExport,
    WahaSession,
    WebhookEvent,
    utcnow,
)
from portal.services import audit, events, maintenance, outreach, privacy, tenant_admin
from portal.services.errors import Invalid, NotFound
from portal.storage import storage
from tests.builders import TEST_ACTOR, envelope, inbound_payload, make_tenant, new_session, stored_message
from tests.builders import post_events as post
from tests.helpers import ensure_test_partitions, quiet_waha_webhooks

PERSON = "491709999999"
CHAT = f"{PERSON}@c.us"
OTHER = "491701111111"


@pytest.fixture(autouse=True)
def _quiet(app: Any) -> Any:
    with quiet_waha_webhooks(app):
        yield


@pytest.fixture
def deliver(client: Any) -> Any:
    def run(session: Any, *bodies: dict[str, Any]) -> None:
        assert post(client, session, list(bodies)).status_code == 200
        events.drain()
        db.session.expire_all()

    return run


def message(session: Any, text: str, *, sender: str = PERSON) -> dict[str, Any]:
    return envelope(session, "message", inbound_payload(text, sender=sender))


def _count(model: Any, *conditions: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0


def _with_file(tenant: Any, session: Any, key: str, content: bytes, **fields: Any) -> Message:
    storage().save(key, content, "image/png")
    media = {"status": "stored", "key": key, "mimetype": "image/png", "size": len(content)}
    return stored_message(tenant, session, direction="in", body="a picture", media=media, **fields)


# ---- retention -----------------------------------------------------------------------------------------------------


def test_media_retention_deletes_old_files_and_keeps_their_messages(tenant, media_backend):
    session = new_session(tenant, "Support")
    tenant.retention_media_days = 10
    db.session.commit()
    old = _with_file(tenant, session, f"t/{tenant.id}/media/old.png", b"old", created_at=utcnow() - timedelta(days=20))
    new = _with_file(tenant, session, f"t/{tenant.id}/media/new.png", b"new", created_at=utcnow() - timedelta(days=2))

    counts = maintenance.prune()

    db.session.expire_all()
    assert counts["media_expired"] == 1
    kept_old, kept_new = db.session.get(Message, old.id), db.session.get(Message, new.id)
    assert kept_old is not None and kept_old.body == "a picture"
    assert kept_old.media["status"] == "unavailable" and "key" not in kept_old.media
    assert not storage().exists(f"t/{tenant.id}/media/old.png")
    assert kept_new.media["status"] == "stored" and storage().exists(f"t/{tenant.id}/media/new.png")
    entry = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "retention.media_expired")).one()
    assert (entry.tenant_id, entry.details) == (tenant.id, {"files": 1, "days": 10})
    run = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "retention.prune")).one()
    assert run.tenant_id is None and run.details["media_expired"] == 1


def test_platform_message_retention_caps_a_tenants_longer_setting(app, tenant):
    session = new_session(tenant, "Support")
    tenant.retention_messages_days = 3650  # stored before the platform lowered its limit
    db.session.commit()
    old = stored_message(tenant, session, created_at=utcnow() - timedelta(days=50))
    recent = stored_message(tenant, session, created_at=utcnow() - timedelta(days=5))
    old_id, recent_id = old.id, recent.id
    app.config["RETENTION_MESSAGES_DAYS"] = 20
    try:
        counts = maintenance.prune()
    finally:
        app.config["RETENTION_MESSAGES_DAYS"] = 90
        ensure_test_partitions()
    db.session.expire_all()
    assert counts["messages"] >= 1
    assert db.session.get(Message, old_id) is None and db.session.get(Message, recent_id) is not None


def test_event_retention_of_a_tenant_removes_only_its_old_events(tenant):
    session = new_session(tenant, "Support")
    tenant.retention_events_days = 3
    db.session.commit()
    for n, age in enumerate((10, 1)):
        db.session.add(
            WebhookEvent(
                event_id=f"evt_ret_{n}",
                tenant_id=tenant.id,
                session_id=session.id,
                event="message",
                payload={},
                status="done",
                received_at=utcnow() - timedelta(days=age),
            )
        )
    db.session.commit()

    maintenance.prune()
    ensure_test_partitions()

    db.session.expire_all()
    assert set(db.session.scalars(select(WebhookEvent.event_id).where(WebhookEvent.tenant_id == tenant.id))) == {
        "evt_ret_1"
    }


@pytest.mark.parametrize("field", ["retention_messages_days", "retention_media_days", "retention_events_days"])
def test_tenant_cannot_keep_data_longer_than_the_platform(app, tenant, field):
    limit = privacy_limit = {"retention_messages_days": 90, "retention_media_days": 90, "retention_events_days": 14}[
        field
    ]
    with pytest.raises(Invalid) as caught:
        tenant_admin.update_settings(tenant, TEST_ACTOR, **{field: privacy_limit + 1})
    assert caught.value.details["fields"][0]["field"] == field
    assert f"at most {limit} days" in caught.value.message

    tenant_admin.update_settings(tenant, TEST_ACTOR, **{field: 2})

    assert getattr(db.session.get(Tenant, tenant.id), field) == 2
    last = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert last.action == "tenant.settings_update" and last.details[field]["to"] == 2


# ---- a person's export ---------------------------------------------------------------------------------------------


def _person_everywhere(tenant: Any, session: Any) -> dict[str, Any]:
    """The person in every table that can hold them."""
    contact = Contact(tenant_id=tenant.id, chat_id=CHAT, phone=PERSON, push_name="Ada", tags=["vip"])
    chat = Chat(tenant_id=tenant.id, session_id=session.id, chat_id=CHAT, name="Ada")
    db.session.add_all([contact, chat])
    db.session.flush()
    db.session.add(ChatNote(tenant_id=tenant.id, chat_id=chat.id, body="prefers calls"))
    db.session.add(OptOut(tenant_id=tenant.id, chat_id=CHAT, source="keyword"))
    db.session.add(QueuedSend(tenant_id=tenant.id, session_id=session.id, chat_id=CHAT, body="later"))
    campaign = Campaign(tenant_id=tenant.id, name="Spring", template="Hi {{name}}", state="running")
    db.session.add(campaign)
    db.session.flush()
    db.session.add(
        CampaignRecipient(campaign_id=campaign.id, line=2, chat_id=CHAT, values={"name": "Ada"}, state="queued")
    )
    db.session.commit()
    text = stored_message(tenant, session, chat_id=CHAT, body="my address is ...")
    picture = _with_file(tenant, session, f"t/{tenant.id}/media/p1.png", b"\x89PNG picture", chat_id=CHAT)
    stored_message(tenant, session, chat_id=f"{OTHER}@c.us", body="someone else")
    return {"contact": contact, "chat": chat, "campaign": campaign, "text": text, "picture": picture}


def _zip(path: str) -> zipfile.ZipFile:
    with open(path, "rb") as source:
        data = source.read()
    privacy.remove(path)
    return zipfile.ZipFile(io.BytesIO(data))


def test_contact_export_holds_json_and_the_media_files(tenant, media_backend):
    session = new_session(tenant, "Support")
    made = _person_everywhere(tenant, session)

    archive = _zip(privacy.export_contact(tenant, TEST_ACTOR, privacy.by_phone(tenant, f"+{PERSON}")))

    names = set(archive.namelist())
    assert {"contact.json", "messages.json", "manifest.json"} <= names
    messages = json.loads(archive.read("messages.json"))
    assert sorted(m["body"] for m in messages) == ["a picture", "my address is ..."]
    [with_file] = [m for m in messages if m.get("file")]
    assert archive.read(with_file["file"]) == b"\x89PNG picture"
    document = json.loads(archive.read("contact.json"))
    assert document["contact"]["push_name"] == "Ada" and document["contact"]["tags"] == ["vip"]
    assert document["optOut"]["source"] == "keyword"
    assert [r["campaign"] for r in document["campaignRecipients"]] == ["Spring"]
    assert [q["body"] for q in document["sendQueue"]] == ["later"]
    assert [n["body"] for n in document["chats"][0]["notes"]] == ["prefers calls"]
    assert document["chats"][0]["session"] == "Support"
    last = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert last.action == "contact.export" and PERSON not in json.dumps(last.details) + (last.target_id or "")
    assert made["contact"].id


def test_export_of_a_contact_without_messages_is_an_empty_list(tenant):
    db.session.add(Contact(tenant_id=tenant.id, chat_id=CHAT, phone=PERSON, tags=[]))
    db.session.commit()

    archive = _zip(privacy.export_contact(tenant, TEST_ACTOR, privacy.by_phone(tenant, PERSON)))

    assert json.loads(archive.read("messages.json")) == []
    assert json.loads(archive.read("contact.json"))["chats"] == []
    assert not [n for n in archive.namelist() if n.startswith("media/")]


def test_another_tenants_contact_is_not_found(tenant):
    other = make_tenant("globex", name="Globex")
    db.session.add(Contact(tenant_id=other.id, chat_id=CHAT, phone=PERSON, tags=[]))
    db.session.commit()

    with pytest.raises(NotFound) as caught:
        privacy.by_phone(tenant, PERSON)
    assert caught.value.code == "contact_not_found"


# ---- a person's erase ----------------------------------------------------------------------------------------------


def test_erase_removes_the_person_from_every_table_and_whatsapp(tenant, sim, make_session, deliver, media_backend):
    session = make_session("Support", status="WORKING")
    sim.inbound(session.external_name, from_=PERSON, text="hello from the phone")
    deliver(session, message(session, "hi, I am Ada"), message(session, "not Ada", sender=OTHER))
    made = _person_everywhere_extra(tenant, session)
    db.session.add(
        IdempotencyRecord(tenant_id=tenant.id, key="k1", fingerprint="f", status_code=201, response={"chatId": CHAT})
    )
    audit.record(tenant.id, "contact.tags", TEST_ACTOR, details={"chat_id": CHAT, "after": ["vip"]}, commit=True)
    audit.record(tenant.id, "message.send", TEST_ACTOR, details={"to": f"+{PERSON}1"}, commit=True)  # not them
    subject = privacy.by_phone(tenant, PERSON)

    report = privacy.erase_contact(tenant, TEST_ACTOR, subject)

    db.session.expire_all()
    mine = [CHAT]
    assert _count(Message, Message.tenant_id == tenant.id, Message.chat_id.in_(mine)) == 0
    assert _count(Chat, Chat.chat_id.in_(mine)) == 0
    assert _count(ChatNote, ChatNote.tenant_id == tenant.id) == 0
    assert _count(Contact, Contact.chat_id.in_(mine)) == 0
    assert _count(QueuedSend, QueuedSend.chat_id.in_(mine)) == 0
    assert _count(OptOut, OptOut.chat_id.in_(mine)) == 0
    assert _count(IdempotencyRecord, IdempotencyRecord.tenant_id == tenant.id) == 0
    assert _count(WebhookEvent, WebhookEvent.tenant_id == tenant.id, WebhookEvent.event == "message") == 1  # OTHER's
    recipient = db.session.scalar(select(CampaignRecipient).where(CampaignRecipient.campaign_id == made["campaign"].id))
    assert recipient.chat_id.startswith("erased:") and recipient.values == {} and recipient.state == "skipped"
    assert not storage().exists(f"t/{tenant.id}/media/p1.png")
    # someone else's data stays
    assert _count(Message, Message.chat_id == f"{OTHER}@c.us") == 1
    assert _count(Contact, Contact.chat_id == f"{OTHER}@c.us") == 1
    # WhatsApp was asked to delete the chat
    assert [d["chatId"] for d in sim.deleted_chats(session.external_name)] == [CHAT]
    assert report.waha_deleted == 1 and report.counts["files"] == 1
    # the audit log keeps that it happened, not who or what
    entry = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "contact.erase")).one()
    assert PERSON not in json.dumps(entry.details) + entry.target_id
    assert entry.details["phone"] == "+49********99" and entry.details["messages"] == 2
    tags = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "contact.tags")).one()
    assert tags.details == {"redacted": "the person was erased"}
    other = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "message.send")).one()
    assert other.details == {"to": f"+{PERSON}1"}


def _person_everywhere_extra(tenant: Any, session: Any) -> dict[str, Any]:
    """The rows event processing did not make: a note, opt-out, queue entry, campaign recipient, a stored file."""
    chat = db.session.scalar(select(Chat).where(Chat.chat_id == CHAT))
    db.session.add(ChatNote(tenant_id=tenant.id, chat_id=chat.id, body="prefers calls"))
    db.session.add(OptOut(tenant_id=tenant.id, chat_id=CHAT, source="keyword"))
    db.session.add(QueuedSend(tenant_id=tenant.id, session_id=session.id, chat_id=CHAT, body="later"))
    campaign = Campaign(tenant_id=tenant.id, name="Spring", template="Hi {{name}}", state="running")
    db.session.add(campaign)
    db.session.flush()
    db.session.add(
        CampaignRecipient(campaign_id=campaign.id, line=2, chat_id=CHAT, values={"name": "Ada"}, state="queued")
    )
    db.session.commit()
    _with_file(tenant, session, f"t/{tenant.id}/media/p1.png", b"picture", chat_id=CHAT)
    return {"campaign": campaign}


def test_erase_can_keep_the_number_on_the_opt_out_list(tenant):
    session = new_session(tenant, "Support")
    _person_everywhere(tenant, session)

    privacy.erase_contact(tenant, TEST_ACTOR, privacy.by_phone(tenant, PERSON), keep_opt_out=True)

    assert _count(OptOut, OptOut.chat_id == CHAT) == 1
    assert _count(Message, Message.chat_id == CHAT) == 0


def test_a_scheduled_send_repeated_after_the_erase_answers_nothing_of_anyone(tenant):
    session = new_session(tenant, "Support")
    at = utcnow() + timedelta(hours=2)

    def schedule(to: str, text: str, key: str | None) -> QueuedSend:
        return outreach.schedule_message(
            tenant, session.id, TEST_ACTOR, to=f"+{to}", send_at=at, text=text, idempotency_key=key
        )

    first_id = schedule(PERSON, "for the person", "k-person").id
    privacy.erase_contact(tenant, TEST_ACTOR, privacy.by_phone(tenant, PERSON))

    # the stored answer named the person's chat: it went with the erase, and the repeat is a new request
    assert _count(IdempotencyRecord, IdempotencyRecord.tenant_id == tenant.id) == 0
    again = schedule(PERSON, "for the person", "k-person")
    assert again.id != first_id and again.chat_id == CHAT
    # a record that still points at an id another recipient's message holds now is answered as not found
    other = schedule(OTHER, "for someone else", None)
    record = db.session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.tenant_id == tenant.id))
    record.response = {"id": other.id}
    db.session.commit()
    with pytest.raises(NotFound):
        schedule(PERSON, "for the person", "k-person")


def test_a_message_after_the_erase_starts_a_new_record(tenant, deliver):
    session = new_session(tenant, "Support")
    deliver(session, message(session, "before"))
    privacy.erase_contact(tenant, TEST_ACTOR, privacy.by_phone(tenant, PERSON))

    deliver(session, message(session, "after"))

    assert list(db.session.scalars(select(Message.body).where(Message.chat_id == CHAT))) == ["after"]
    chat = db.session.scalar(select(Chat).where(Chat.chat_id == CHAT))
    assert chat.unread_count == 1 and chat.last_preview == "after"
    assert _count(Contact, Contact.chat_id == CHAT) == 1


def test_erase_while_messages_keep_arriving_leaves_nothing_of_what_came_before(app, tenant, client):
    """Events of the person are received and processed by another thread all through the erase: whatever was
    received before the erase started is gone afterwards; only messages received after it may make a new record."""
    session = new_session(tenant, "Support")
    session_id = session.id
    stop = threading.Event()
    sent: list[tuple[str, float]] = []  # (text, when it was received)
    failures: list[BaseException] = []

    def arrive() -> None:
        import time

        with app.app_context():
            row = db.session.get(WahaSession, session_id)
            n = 0
            try:
                while not stop.is_set():
                    n += 1
                    text = f"m{n}"
                    assert post(app.test_client(), row, [message(row, text)]).status_code == 200
                    sent.append((text, time.monotonic()))
                    events.process_batch()
            except BaseException as exc:  # reported to the test
                failures.append(exc)
            finally:
                db.session.remove()

    worker = threading.Thread(target=arrive)
    worker.start()
    import time

    while len(sent) < 15:
        time.sleep(0.01)
    started = time.monotonic()
    privacy.erase_contact(tenant, TEST_ACTOR, privacy.by_phone(tenant, PERSON))
    time.sleep(0.2)
    stop.set()
    worker.join(10)
    assert not failures
    events.drain()
    db.session.expire_all()

    before = {text for text, when in sent if when < started}
    left = set(db.session.scalars(select(Message.body).where(Message.chat_id == CHAT)))
    assert len(before) >= 15
    assert not (left & before)
    events_left = [
        e.payload.get("payload", {}).get("body")
        for e in db.session.scalars(select(WebhookEvent).where(WebhookEvent.tenant_id == tenant.id))
    ]
    assert not (set(events_left) & before)
    if left:  # later messages made a new record: a chat and a contact again
        assert _count(Chat, Chat.chat_id == CHAT) == 1 and _count(Contact, Contact.chat_id == CHAT) == 1


# ---- the tenant's export -------------------------------------------------------------------------------------------


def test_tenant_export_builds_a_zip_with_data_and_files_until_it_expires(app, tenant, media_backend):
    session = new_session(tenant, "Support")
    _person_everywhere(tenant, session)
    export = privacy.request_export(tenant, TEST_ACTOR)

    assert privacy.build_export(export.id) == "ready"

    db.session.expire_all()
    export = db.session.get(TenantExport, export.id)
    stored = privacy.export_file(tenant, export.id, TEST_ACTOR)
    with storage().open(stored.key) as source:
        archive = zipfile.ZipFile(io.BytesIO(source.read()))
    names = set(archive.namelist())
    assert {"tenant.json", "sessions.json", "messages.json", "contacts.json", "chats.json", "audit_log.json"} <= names
    sessions = json.loads(archive.read("sessions.json"))
    assert [s["name"] for s in sessions] == ["Support"] and "hmac_key" not in sessions[0]
    [with_file] = [m for m in json.loads(archive.read("messages.json")) if m.get("file")]
    assert archive.read(with_file["file"]) == b"\x89PNG picture"
    assert json.loads(archive.read("tenant.json"))["tenant"]["slug"] == tenant.slug

    expired = privacy.expire_exports(export.expires_at + timedelta(seconds=1))

    assert expired == 1 and not storage().exists(stored.key)
    with pytest.raises(privacy.ExportExpired):
        privacy.export_file(tenant, export.id, TEST_ACTOR)


def test_another_tenants_export_is_not_found(tenant):
    export = privacy.request_export(tenant, TEST_ACTOR)
    privacy.build_export(export.id)
    other = make_tenant("globex", name="Globex")

    with pytest.raises(NotFound):
        privacy.export_file(other, export.id, TEST_ACTOR)


# ---- the tenant's deletion -----------------------------------------------------------------------------------------


def test_deletion_deactivates_at_once_and_can_be_cancelled(tenant, sim, make_session):
    session = make_session("Support", status="WORKING")

    privacy.request_deletion(tenant, TEST_ACTOR, tenant.slug)

    db.session.expire_all()
    assert tenant.is_active is False
    assert (tenant.deletion_scheduled_for - utcnow()).days in (29, 30)
    assert sim.session(session.external_name)["status"] == "STOPPED"

    privacy.cancel_deletion(tenant, TEST_ACTOR)

    db.session.expire_all()
    assert tenant.is_active is True and tenant.deletion_scheduled_for is None
    assert privacy.purge_due(utcnow() + timedelta(days=60)) == []
    platform = select(AuditEvent.action).where(AuditEvent.tenant_id.is_(None), AuditEvent.target_type == "tenant")
    assert list(db.session.scalars(platform)) == ["tenant.deletion_request", "tenant.deletion_cancel"]


def test_deletion_needs_the_tenant_id_typed(tenant):
    with pytest.raises(Invalid):
        privacy.request_deletion(tenant, TEST_ACTOR, "something else")
    assert db.session.get(Tenant, tenant.id).is_active is True


def test_deletion_after_the_grace_period_removes_everything(tenant, sim, make_session, media_backend):
    session = make_session("Support", status="WORKING")
    external, tenant_id = session.external_name, tenant.id
    _person_everywhere(tenant, session)
    privacy.request_deletion(tenant, TEST_ACTOR, tenant.slug)

    assert privacy.purge_due(utcnow() + timedelta(days=29)) == []
    assert privacy.purge_due(utcnow() + timedelta(days=31)) == [tenant_id]

    db.session.expire_all()
    assert db.session.get(Tenant, tenant_id) is None
    assert _count(Message, Message.tenant_id == tenant_id) == 0
    assert _count(Contact, Contact.tenant_id == tenant_id) == 0
    assert sim.session(external) is None
    assert not storage().exists(f"t/{tenant_id}/media/p1.png")
    entry = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "tenant.deleted")).one()
    assert entry.tenant_id is None and entry.details["slug"] == "acme"


def test_a_file_still_downloading_when_its_person_is_erased_is_not_kept(app, client, tenant, sim):
    """The download from WAHA takes a while (the simulator answers slowly); the person is erased meanwhile: the
    file the download stores afterwards is deleted again, no row names it and nothing of the person stays."""
    import base64

    from portal.services import media
    from tests.builders import relay_inbound_media, working_session

    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
    )
    session = working_session(tenant, sim, "Pictures")
    relay_inbound_media(client, sim, session, png)
    events.process_batch()  # the download job is queued (and left there)
    row = db.session.scalar(select(Message).where(Message.media.is_not(None)))
    row_id, url = row.id, row.media["source"]
    before = set(storage().list_keys())
    outcome: list[str] = []

    def download() -> None:
        with app.app_context():
            try:
                outcome.append(media.fetch_media(row_id, url))
            finally:
                db.session.remove()

    sim.set_latency(800)
    try:
        worker = threading.Thread(target=download)
        worker.start()
        import time

        time.sleep(0.3)  # the download is under way
        privacy.erase_contact(tenant, TEST_ACTOR, privacy.by_phone(tenant, "491708888888"))
        worker.join(15)
    finally:
        sim.set_latency(0)

    assert outcome == ["skipped"]
    assert set(storage().list_keys()) == before
    assert _count(Message, Message.id == row_id) == 0
