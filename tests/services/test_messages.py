"""Sending and reading messages: wahasim over loopback, real PostgreSQL and Redis."""

from __future__ import annotations

import base64
import struct
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy import text as text_sql

from portal.dbengines import begin_autocommit
from portal.extensions import db, redis_store
from portal.models import AuditEvent, Message, Tenant
from portal.services import messages, servers, sessions
from portal.services.errors import Conflict, Invalid, NotFound, RateLimited, Upstream
from tests.builders import TEST_ACTOR, make_tenant

NUMBER = "+49 170 1234567"
CHAT = "491701234567@c.us"


def png_bytes() -> bytes:
    """A real 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def message_rows() -> int:
    return db.session.scalar(select(func.count(Message.id))) or 0


@pytest.fixture
def working(make_session):
    """A paired session of the tenant, with room to send in bursts."""
    return make_session("Sales", status="WORKING")


@pytest.fixture(autouse=True)
def _fast_tenant(request):
    """Most tests send several messages in a row; the pacing tests set their own rate."""
    if "tenant" in request.fixturenames:
        tenant = request.getfixturevalue("tenant")
        tenant.send_rate_per_minute = 6000
        db.session.commit()


# ---------------------------------------------------------------------------------------------- sending


def test_send_text_reaches_waha_once_and_is_recorded(tenant, sim, working):
    message = messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="Hello")

    [sent] = sim.sent_messages(working.external_name)
    assert (sent["chatId"], sent["body"]) == (CHAT, "Hello")
    assert message.waha_message_id == sent["id"]
    assert (message.direction, message.chat_id, message.body, message.status) == ("out", CHAT, "Hello", "PENDING")
    assert message.sent_at is not None and message.from_me


@pytest.mark.parametrize("autocommit", [False, True], ids=["transaction", "autocommit"])
def test_the_record_after_waha_accepted_is_stored_and_leaves_connections_durable(app, tenant, sim, working, autocommit):
    """The UPDATE after WAHA accepted commits without waiting for the disk, for its own transaction only: every
    pooled connection, the one it ran on among them, commits durably again afterwards (PostgreSQL)."""
    if autocommit:  # as the API's send endpoint runs it
        db.session.commit()
        assert begin_autocommit(db.session()) == (db.engine.dialect.name == "postgresql")
    message = messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="Hello")
    db.session.commit()

    with db.engine.connect() as fresh:
        stored = fresh.execute(select(Message.sent_at, Message.send_state).where(Message.id == message.id)).one()
    assert stored.sent_at is not None and stored.send_state is None
    if db.engine.dialect.name != "postgresql":
        return
    engines = {db.engine, *[e for e in app.extensions.values() if isinstance(e, sa.engine.Engine)]}
    held = [engine.connect() for engine in engines for _ in range(engine.pool.checkedin())]  # every idle one
    try:
        settings = [connection.exec_driver_sql("SHOW synchronous_commit").scalar() for connection in held]
    finally:
        for connection in held:
            connection.close()
    assert settings and set(settings) == {"on"}


def test_send_before_the_session_is_working_is_409_with_its_status(tenant, sim, make_session):
    session = make_session(status="SCAN_QR_CODE")

    with pytest.raises(Conflict) as caught:
        messages.send_message(tenant, session.id, TEST_ACTOR, to=NUMBER, text="Hello")

    assert caught.value.code == "session_not_ready"
    assert caught.value.details["status"] == "SCAN_QR_CODE"
    assert message_rows() == 0 and not sim.sent_messages(session.external_name)


def test_send_after_scan_and_sync_works(tenant, sim, make_session):
    session = make_session(status="SCAN_QR_CODE")
    sim.scan(session.external_name)
    sessions.sync_session(tenant, session.id)

    messages.send_message(tenant, session.id, TEST_ACTOR, to=NUMBER, text="Hello")

    assert len(sim.sent_messages(session.external_name)) == 1


@pytest.mark.smoke
def test_send_same_idempotency_key_twice_sends_once(tenant, sim, working):
    first = messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="Hi", idempotency_key="k-1")
    again = messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="Hi", idempotency_key="k-1")

    assert again.id == first.id
    assert len(sim.sent_messages(working.external_name)) == 1
    assert message_rows() == 1


def test_send_same_idempotency_key_for_another_message_is_409(tenant, sim, working):
    messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="Hi", idempotency_key="k-1")

    with pytest.raises(Conflict) as caught:
        messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="Other", idempotency_key="k-1")

    assert caught.value.code == "idempotency_key_reused"
    assert len(sim.sent_messages(working.external_name)) == 1


def test_send_retried_by_the_client_after_a_503_is_one_message(tenant, sim, working):
    sim.fail_next(1, 503)

    message = messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="Hi", idempotency_key="k-1")

    assert len(sim.sent_messages(working.external_name)) == 1
    assert message.status == "PENDING" and message.error is None


def test_send_with_one_key_racing_in_threads_sends_once(app, tenant, sim, working):
    sim.set_latency(50)
    tenant_id, session_id, ids, errors = tenant.id, working.id, [], []
    barrier = threading.Barrier(5)

    def send() -> None:
        with app.app_context():
            try:
                barrier.wait()
                owner = db.session.get(Tenant, tenant_id)
                ids.append(
                    messages.send_message(
                        owner, session_id, TEST_ACTOR, to=NUMBER, text="Hi", idempotency_key="race"
                    ).id
                )
            except Exception as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=send) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors and len(set(ids)) == 1
    assert len(sim.sent_messages(working.external_name)) == 1


@pytest.mark.smoke
def test_send_when_waha_is_down_is_503_and_the_row_says_error(tenant, sim, working):
    sim.fail_next(5, 503)

    with pytest.raises(Upstream) as caught:
        messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="Hi")

    sim.fail_next(0)
    assert caught.value.status == 503 and caught.value.retry_after
    message = db.session.scalar(select(Message))
    assert message.status == "ERROR" and message.error and message.failed_at is not None


def test_send_failure_is_audited(tenant, sim, working):
    sim.fail_next(5, 503)

    with pytest.raises(Upstream):
        messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="Hi")

    sim.fail_next(0)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "message.send_failed"))
    assert event.details["error"] == "WahaUnavailable"


def test_send_faster_than_the_tenant_rate_is_429_with_retry_after(tenant, sim, working):
    tenant.send_rate_per_minute = 2
    db.session.commit()
    messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="one")

    with pytest.raises(RateLimited) as caught:
        messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="two")

    assert caught.value.status == 429 and 1 <= caught.value.retry_after <= 30
    assert len(sim.sent_messages(working.external_name)) == 1


def test_send_repeat_with_the_same_key_is_not_paced(tenant, working):
    tenant.send_rate_per_minute = 1
    db.session.commit()
    first = messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="one", idempotency_key="k")

    again = messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="one", idempotency_key="k")

    assert again.id == first.id


@pytest.mark.parametrize(
    "to, chat_id",
    [
        ("+49 170 1234567", "491701234567@c.us"),
        ("491701234567", "491701234567@c.us"),
        ("0049 (170) 123-4567", "491701234567@c.us"),
        ("+1 650 253 0000", "16502530000@c.us"),
        ("+49\u202f170\u202f1234567", "491701234567@c.us"),  # the narrow no-break space of French spellings
        ("+49\t170\u20091234567\u3000", "491701234567@c.us"),
        ("491701234567@c.us", "491701234567@c.us"),
        ("120363040123456789@g.us", "120363040123456789@g.us"),
        ("123456789012345@lid", "123456789012345@lid"),
    ],
)
def test_send_normalises_the_recipient(tenant, working, to, chat_id):
    message = messages.send_message(tenant, working.id, TEST_ACTOR, to=to, text="Hi")

    assert message.chat_id == chat_id


@pytest.mark.parametrize(
    "to", ["12", "+49 12", "hello", "0170 1234567", "+999 1234567", "abc@c.us", "4917@s.whatsapp.net", ""]
)
def test_send_to_an_invalid_number_is_400_on_field_to(tenant, sim, working, to):
    with pytest.raises(Invalid) as caught:
        messages.send_message(tenant, working.id, TEST_ACTOR, to=to, text="Hi")

    assert caught.value.details["fields"][0]["field"] == "to"
    assert not sim.sent_messages(working.external_name)


def test_send_text_over_4096_characters_is_400(tenant, working):
    with pytest.raises(Invalid) as caught:
        messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="x" * 4097)

    assert caught.value.details["fields"][0]["field"] == "text"


def test_send_text_of_4096_characters_goes_out(tenant, sim, working):
    messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="x" * 4096)

    assert len(sim.sent_messages(working.external_name)[0]["body"]) == 4096


def test_send_without_text_or_media_is_400(tenant, working):
    with pytest.raises(Invalid):
        messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="   ")


def test_send_image_as_base64_reaches_waha(tenant, sim, working):
    data = base64.b64encode(png_bytes()).decode()

    message = messages.send_message(
        tenant,
        working.id,
        TEST_ACTOR,
        to=NUMBER,
        media={"kind": "image", "data": data, "mimetype": "image/png", "filename": "dot.png", "caption": "A dot"},
    )

    [sent] = sim.sent_messages(working.external_name)
    assert (sent["kind"], sent["body"]) == ("image", "A dot")
    assert message.media["size"] == len(png_bytes()) and "data" not in message.media
    assert message.body == "A dot"


def test_send_document_by_url_reaches_waha(tenant, sim, working):
    messages.send_message(
        tenant,
        working.id,
        TEST_ACTOR,
        to=NUMBER,
        text="The invoice",
        media={"kind": "document", "url": "https://example.com/files/invoice.pdf"},
    )

    [sent] = sim.sent_messages(working.external_name)
    assert sent["kind"] == "file"
    assert sent["file"]["mimetype"] == "application/pdf"


@pytest.mark.parametrize(
    "kind, waha_kind, mimetype", [("audio", "voice", "audio/ogg"), ("video", "video", "video/mp4")]
)
def test_send_audio_and_video_by_url_reach_waha(tenant, sim, working, kind, waha_kind, mimetype):
    messages.send_message(
        tenant,
        working.id,
        TEST_ACTOR,
        to=NUMBER,
        media={"kind": kind, "url": "https://example.com/clip", "mimetype": mimetype},
    )

    assert sim.sent_messages(working.external_name)[0]["kind"] == waha_kind


@pytest.mark.parametrize(
    "media, field",
    [
        ({"kind": "sticker", "url": "https://example.com/a.webp"}, "media.kind"),
        ({"kind": "image", "url": "https://example.com/a.png", "data": "AAAA"}, "media"),
        ({"kind": "image", "url": "https://example.com/a.pdf"}, "media.mimetype"),
        (
            {"kind": "image", "data": base64.b64encode(b"%PDF-1.7 not an image").decode(), "mimetype": "image/png"},
            "media.mimetype",
        ),
        ({"kind": "document", "data": "not base64!", "mimetype": "application/pdf"}, "media.data"),
        ({"kind": "document", "url": "ftp://example.com/a.pdf"}, "media.url"),
        (
            {"kind": "document", "url": "https://example.com/a.exe", "mimetype": "application/x-msdownload"},
            "media.mimetype",
        ),
        ({"kind": "audio", "url": "https://example.com/a.ogg", "caption": "no"}, "media.caption"),
    ],
)
def test_send_rejects_invalid_media(tenant, sim, working, media, field):
    with pytest.raises(Invalid) as caught:
        messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, media=media)

    assert caught.value.details["fields"][0]["field"] == field
    assert not sim.sent_messages(working.external_name)


def test_send_media_over_the_size_limit_is_400(app, tenant, sim, working):
    app.config["MEDIA_MAX_BYTES"], saved = 100, app.config["MEDIA_MAX_BYTES"]
    try:
        with pytest.raises(Invalid) as caught:
            messages.send_message(
                tenant,
                working.id,
                TEST_ACTOR,
                to=NUMBER,
                media={"kind": "document", "data": base64.b64encode(b"x" * 101).decode(), "mimetype": "text/plain"},
            )
    finally:
        app.config["MEDIA_MAX_BYTES"] = saved

    assert "larger than 100 bytes" in caught.value.message


def test_send_to_another_tenants_session_is_not_found(tenant, sim, make_session):
    other = make_tenant("other")
    theirs = make_session("Theirs", status="WORKING", owner=other)

    with pytest.raises(NotFound):
        messages.send_message(tenant, theirs.id, TEST_ACTOR, to=NUMBER, text="Hi")

    assert not sim.sent_messages(theirs.external_name)


def test_send_is_audited_without_the_text(tenant, working):
    message = messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="secret words")

    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "message.send"))
    assert event.target_id == str(message.id)
    assert "secret words" not in str(event.details)


def test_send_keeps_the_callers_metadata(tenant, working):
    message = messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="Hi", metadata={"order": "A-17"})

    assert message.extra == {"order": "A-17"}


# ---------------------------------------------------------------------------------------------- reading


def add_messages(
    tenant,
    session,
    count,
    *,
    start=None,
    direction="out",
    chat_id=CHAT,
    body="msg {n}",
    status="PENDING",
    same_time=False,
):
    """Rows as the send path and event processing store them, newest last."""
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for n in range(count):
        created = start if same_time else start + timedelta(seconds=n)
        rows.append(
            Message(
                tenant_id=tenant.id,
                session_id=session.id,
                direction=direction,
                chat_id=chat_id,
                body=body.format(n=n),
                status=status,
                created_at=created,
                updated_at=created,
                from_me=direction == "out",
            )
        )
    db.session.add_all(rows)
    db.session.commit()
    return rows


def all_pages(tenant, **filters):
    seen, cursor, pages = [], None, 0
    while True:
        page = messages.list_messages(tenant, cursor=cursor, **filters)
        seen.extend(m.id for m in page.items)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return seen, pages


def test_list_messages_pages_through_everything_newest_first_without_repeats(tenant, working):
    rows = add_messages(tenant, working, 23)

    seen, pages = all_pages(tenant, limit=5)

    assert seen == [m.id for m in sorted(rows, key=lambda m: (m.created_at, m.id), reverse=True)]
    assert pages == 5


@pytest.mark.smoke
def test_list_messages_pages_are_stable_when_many_share_a_timestamp(tenant, working):
    rows = add_messages(tenant, working, 12, same_time=True)

    seen, _ = all_pages(tenant, limit=5)

    assert seen == sorted((m.id for m in rows), reverse=True)


def test_list_messages_pages_are_stable_when_new_messages_arrive(tenant, working):
    add_messages(tenant, working, 10)
    first = messages.list_messages(tenant, limit=4)
    add_messages(tenant, working, 3, start=datetime(2026, 2, 1, tzinfo=UTC))

    second = messages.list_messages(tenant, limit=4, cursor=first.next_cursor)

    assert [m.body for m in second.items] == ["msg 5", "msg 4", "msg 3", "msg 2"]


def test_list_messages_pages_with_filters(tenant, make_session, working):
    other_session = make_session("Support")
    add_messages(tenant, working, 7, direction="in", body="in {n}")
    add_messages(tenant, working, 5, direction="out", body="out {n}")
    add_messages(tenant, other_session, 4, direction="in", body="elsewhere {n}")

    seen, pages = all_pages(tenant, session_id=working.id, direction="in", limit=3)

    bodies = [db.session.get(Message, i).body for i in seen]
    assert bodies == [f"in {n}" for n in range(6, -1, -1)]
    assert pages == 3


def test_list_messages_filters_by_status_and_chat(tenant, working):
    add_messages(tenant, working, 3, status="READ", chat_id="491709999999@c.us")
    add_messages(tenant, working, 2, status="READ")
    add_messages(tenant, working, 4, status="PENDING")

    page = messages.list_messages(tenant, status="READ", chat_id=CHAT)

    assert len(page.items) == 2


def test_list_messages_q_is_a_case_insensitive_substring(tenant, working):
    add_messages(tenant, working, 1, body="Your ORDER has shipped")
    add_messages(tenant, working, 1, body="Unrelated")
    add_messages(tenant, working, 1, body="100% done_now")

    assert [m.body for m in messages.list_messages(tenant, q="order").items] == ["Your ORDER has shipped"]
    assert [m.body for m in messages.list_messages(tenant, q="0% d").items] == ["100% done_now"]
    assert messages.list_messages(tenant, q="_n%").items == []


def test_list_messages_since_and_until_bound_the_time(tenant, working):
    add_messages(tenant, working, 10)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    page = messages.list_messages(tenant, since=start + timedelta(seconds=3), until=start + timedelta(seconds=6))

    assert [m.body for m in page.items] == ["msg 5", "msg 4", "msg 3"]


def test_list_messages_shows_only_the_tenants_own(tenant, make_session, working):
    other = make_tenant("other")
    theirs = make_session("Theirs", owner=other)
    add_messages(other, theirs, 3)
    add_messages(tenant, working, 2)

    assert len(messages.list_messages(tenant).items) == 2


def test_list_messages_of_another_tenants_session_is_not_found(tenant, make_session):
    other = make_tenant("other")
    theirs = make_session("Theirs", owner=other)

    with pytest.raises(NotFound):
        messages.list_messages(tenant, session_id=theirs.id)


@pytest.mark.parametrize(
    "filters, field",
    [
        ({"cursor": "garbage!"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"direction": "sideways"}, "direction"),
        ({"status": "LOST"}, "status"),
    ],
)
def test_list_messages_rejects_bad_parameters(tenant, filters, field):
    with pytest.raises(Invalid) as caught:
        messages.list_messages(tenant, **filters)

    assert caught.value.details["fields"][0]["field"] == field


def test_get_message_of_another_tenant_is_not_found(tenant, make_session):
    other = make_tenant("other")
    theirs = make_session("Theirs", owner=other)
    [row] = add_messages(other, theirs, 1)

    with pytest.raises(NotFound) as caught:
        messages.get_message(tenant, row.id)

    assert caught.value.code == "message_not_found"


def test_get_message_returns_the_tenants_message(tenant, working):
    [row] = add_messages(tenant, working, 1)

    assert messages.get_message(tenant, row.id).id == row.id


@pytest.mark.smoke
def test_list_chats_summarises_each_conversation(tenant, working):
    add_messages(tenant, working, 3, chat_id="491701111111@c.us", body="a {n}")
    add_messages(tenant, working, 2, chat_id="491702222222@c.us", body="b {n}", start=datetime(2026, 1, 2, tzinfo=UTC))

    chats = messages.list_chats(tenant, working.id)

    assert [(c.chat_id, c.count, c.last_message.body) for c in chats] == [
        ("491702222222@c.us", 2, "b 1"),
        ("491701111111@c.us", 3, "a 2"),
    ]


def test_list_messages_q_with_quotes_and_backslashes_matches_the_text_as_typed(tenant, working):
    # the pattern is written into the SQL as a literal (its own plan per word): quotes must stay text
    add_messages(tenant, working, 1, body="it's a \\ backslash and 'quotes'")
    add_messages(tenant, working, 1, body="other")

    assert [m.body for m in messages.list_messages(tenant, q="it's a \\").items] == ["it's a \\ backslash and 'quotes'"]
    assert messages.list_messages(tenant, q="'; DROP TABLE messages; --").items == []
    assert db.session.scalar(select(func.count(Message.id))) == 2


def test_list_messages_q_finds_a_rare_word_among_many_and_pages_through_it(tenant, working):
    add_messages(tenant, working, 300, body="order {n} shipped")
    rare = add_messages(tenant, working, 3, body="a KUMQUAT crate {n}", start=datetime(2025, 6, 1, tzinfo=UTC))

    seen, pages = all_pages(tenant, q="kumquat", limit=2)

    assert seen == [m.id for m in reversed(rare)]
    assert pages == 2
    assert len(messages.list_messages(tenant, q="order", limit=50).items) == 50


def test_search_index_serves_a_rare_word_on_postgresql(tenant, working):
    """The log's own search statement, planned by PostgreSQL: a rare word goes through the trigram index instead of
    reading the tenant's rows (the plan is checked, not a timing; bench/pages.py shows it at 1,000,000 rows)."""
    db.session.execute(
        text_sql(
            "INSERT INTO messages (tenant_id, session_id, direction, source, chat_id, from_me, body, status, "
            "metadata, created_at, updated_at) SELECT :t, :s, 'out', 'api', :c, true, 'order ' || g || ' shipped', "
            "'READ', '{}', now() - make_interval(secs => g), now() FROM generate_series(1, 100000) AS g"
        ),
        {"t": tenant.id, "s": working.id, "c": CHAT},
    )
    add_messages(tenant, working, 1, body="a kumquat crate")  # commits
    db.session.execute(text_sql("ANALYZE messages"))
    db.session.commit()
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "FROM messages" in statement:
            seen.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        found = messages.list_messages(tenant, q="kumquat")
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    statement, parameters = seen[-1]
    with db.engine.connect() as conn:
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
        # messages is partitioned by month: each partition has its own copy of the index, named after it
        names = {"ix_messages_body_trgm"} | set(
            conn.execute(
                text_sql(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = to_regclass('ix_messages_body_trgm')"
                )
            ).scalars()
        )

    assert [m.body for m in found.items] == ["a kumquat crate"]
    assert any(name in plan for name in names), plan


def test_a_send_through_a_half_open_circuit_is_its_trial_call(tenant, sim, working):
    tenant.send_rate_per_minute = 6000
    db.session.commit()
    messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="First")  # the number is known now
    breaker = servers.client_for(working.server).breaker
    key, _ = breaker.gate()
    servers.breaker_store().record(breaker.name, True, 1, 0.05)  # another process saw WAHA fail: open for 50 ms
    time.sleep(0.1)  # half-open: the next call asked is the one trial

    message = messages.send_message(tenant, working.id, TEST_ACTOR, to=NUMBER, text="Trial")

    # The send's gates took the trial and its call used that verdict: asking Redis again would have found the
    # trial taken and refused the call as "circuit open".
    assert message.status != "ERROR"
    assert [m["body"] for m in sim.sent_messages(working.external_name)] == ["First", "Trial"]
    assert not redis_store.client.exists(key)  # the trial succeeded: the circuit is closed for every process
