"""Monthly partitions of messages and webhook_events on PostgreSQL: created ahead, dropped whole by retention,
and the global guarantees (one message per Idempotency-Key, one row per WAHA message id, one stored event per
event id) holding across a month boundary. On SQLite the tables stay plain and these functions do nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import Chat, Message, WebhookEvent, utcnow
from portal.services import maintenance, partitions
from portal.storage import storage
from tests.builders import envelope, inbound_payload, new_session, post_events
from tests.helpers import ensure_test_partitions


@pytest.fixture
def pg(ctx: Any) -> Iterator[None]:
    if db.engine.dialect.name != "postgresql":
        assert partitions.ensure() == [] and partitions.status() == []  # SQLite: plain tables, nothing to keep
        pytest.skip("partitions exist on PostgreSQL only; the SQLite fallback is asserted above")
    yield
    db.session.rollback()
    ensure_test_partitions()  # retention tests drop past months other tests write into


@pytest.fixture
def session(tenant: Any) -> Any:
    return new_session(tenant, "Support")


def _names(table: str) -> set[str]:
    with db.engine.connect() as conn:
        return {p.name for p in partitions.partitions(conn, table)}


def _message(tenant: Any, session: Any, when: datetime, **values: Any) -> Message:
    defaults = {"direction": "in", "source": "inbound", "chat_id": "491701111111@c.us"}
    message = Message(
        tenant_id=tenant.id, session_id=session.id, created_at=when, updated_at=when, **{**defaults, **values}
    )
    db.session.add(message)
    db.session.flush()
    return message


def _month_before(now: datetime) -> datetime:
    first = partitions.month_start(now)
    return first - timedelta(days=1)


def test_ensure_creates_this_month_and_two_ahead_and_is_idempotent(pg):
    in_a_year = utcnow() + timedelta(days=370)
    months = [partitions.month_start(in_a_year)]
    for _ in range(2):
        months.append(partitions.next_month(months[-1]))
    created = partitions.ensure(now=in_a_year)
    try:
        wanted = {partitions.partition_name(t, m) for t in partitions.TABLES for m in months}
        assert wanted <= set(created)
        assert wanted <= _names("messages") | _names("webhook_events")
        assert partitions.ensure(now=in_a_year) == []  # nothing missing: nothing done
        # a row stamped in that month finds its partition
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO webhook_events (event_id, event, payload, status, attempts, received_at) "
                    "VALUES ('evt_future', 'message', '{}', 'done', 0, :at)"
                ),
                {"at": in_a_year},
            )
            conn.execute(sa.text("DELETE FROM webhook_events WHERE event_id = 'evt_future'"))
    finally:
        with db.engine.begin() as conn:
            for name in created:
                table = name.rsplit("_p", 1)[0]
                conn.execute(sa.text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
                conn.execute(sa.text(f"DROP TABLE {name}"))


def test_status_reports_a_missing_month_and_ensure_repairs_it(pg):
    ahead = partitions.next_month(partitions.month_start(utcnow()))
    name = partitions.partition_name("messages", ahead)
    with db.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE messages DETACH PARTITION {name}"))
        conn.execute(sa.text(f"DROP TABLE {name}"))
    report = {t["table"]: t for t in partitions.status()}
    assert report["messages"]["missing"] == [name]
    assert partitions.ensure() == [name]
    assert all(not t["missing"] for t in partitions.status())


def test_the_partitions_commands_report_a_missing_month_and_create_it(pg, app):
    ahead = partitions.next_month(partitions.next_month(partitions.month_start(utcnow())))
    name = partitions.partition_name("webhook_events", ahead)
    with db.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE webhook_events DETACH PARTITION {name}"))
        conn.execute(sa.text(f"DROP TABLE {name}"))
    cli = app.test_cli_runner()
    result = cli.invoke(args=["partitions", "status"])
    assert result.exit_code == 1 and f"{name}\tMISSING" in result.output
    result = cli.invoke(args=["partitions", "ensure"])
    assert result.exit_code == 0 and name in result.output
    result = cli.invoke(args=["partitions", "status"])
    assert result.exit_code == 0 and "MISSING" not in result.output
    assert partitions.partition_name("messages", partitions.month_start(utcnow())) in result.output


def test_the_ensure_job_is_scheduled(app):
    from portal.jobs.schedule import entries
    from portal.queue import JOB_ENSURE_PARTITIONS

    assert any(e.func == JOB_ENSURE_PARTITIONS and e.interval <= 3600 for e in entries(app.config))


def test_an_idempotency_key_holds_across_a_month_boundary(pg, tenant, session):
    now = utcnow()
    _message(tenant, session, _month_before(now), idempotency_key="order-42")
    db.session.commit()
    with pytest.raises(IntegrityError):
        _message(tenant, session, now, idempotency_key="order-42")
    db.session.rollback()
    # another tenant may use the same key
    from tests.builders import make_tenant

    other = make_tenant("other", name="Other")
    _message(other, new_session(other, "Other"), now, idempotency_key="order-42")
    db.session.commit()


def test_a_send_retried_next_month_with_its_key_is_not_sent_again(pg, tenant, sim):
    from portal.services import messages
    from tests.builders import TEST_ACTOR, working_session

    session = working_session(tenant, sim)
    first = _message(
        tenant,
        session,
        _month_before(utcnow()),
        direction="out",
        source="api",
        chat_id="491701234567@c.us",
        from_me=True,
        body="Your order shipped",
        status="SERVER",
        idempotency_key="order-7",
        waha_message_id="true_491701234567@c.us_PRE",
    )
    db.session.commit()

    again = messages.send_message(
        tenant, session.id, TEST_ACTOR, to="491701234567", text="Your order shipped", idempotency_key="order-7"
    )

    assert again.id == first.id
    assert sim.sent_messages(session.external_name) == []


def test_a_waha_message_id_is_stored_once_across_a_month_boundary(pg, tenant, session):
    now = utcnow()
    first = _message(tenant, session, _month_before(now), waha_message_id="false_1@c.us_AAA")
    later = _message(tenant, session, now, waha_message_id="false_1@c.us_BBB")
    db.session.commit()
    with pytest.raises(IntegrityError):
        _message(tenant, session, now, waha_message_id="false_1@c.us_AAA")
    db.session.rollback()
    # an UPDATE to a taken id fails too (the send path keeps its predicted id then)
    with pytest.raises(IntegrityError):
        db.session.execute(sa.update(Message).where(Message.id == later.id).values(waha_message_id="false_1@c.us_AAA"))
    db.session.rollback()
    # the id a row gives up is free again
    db.session.execute(sa.update(Message).where(Message.id == first.id).values(waha_message_id="false_1@c.us_CCC"))
    db.session.execute(sa.update(Message).where(Message.id == later.id).values(waha_message_id="false_1@c.us_AAA"))
    db.session.commit()


def test_a_repeated_event_is_stored_once_across_a_month_boundary(pg, client, session):
    body = envelope(session, "message", inbound_payload(), id="evt_month_boundary")
    with db.engine.begin() as conn:  # the first delivery was received last month
        conn.execute(
            sa.text(
                "INSERT INTO webhook_events (event_id, tenant_id, session_id, event, payload, status, attempts, "
                "received_at) VALUES ('evt_month_boundary', :t, :s, 'message', '{}', 'done', 0, :at)"
            ),
            {"t": session.tenant_id, "s": session.id, "at": _month_before(utcnow())},
        )
    response = post_events(client, session, body)
    assert response.status_code == 200
    assert response.get_json()["stored"] == 0
    stored = db.session.scalar(
        select(func.count()).select_from(WebhookEvent).where(WebhookEvent.event_id == "evt_month_boundary")
    )
    assert stored == 1


def test_deleting_messages_frees_their_keys_and_unlinks_chats_and_replies(pg, tenant, session):
    now = utcnow()
    original = _message(tenant, session, _month_before(now), idempotency_key="k1", waha_message_id="false_x_1")
    reply = _message(tenant, session, now, reply_to_id=original.id)
    chat = Chat(tenant_id=tenant.id, session_id=session.id, chat_id="491701111111@c.us", last_message_id=original.id)
    db.session.add(chat)
    db.session.commit()
    db.session.execute(sa.delete(Message).where(Message.id == original.id))
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Chat, chat.id).last_message_id is None
    assert db.session.get(Message, reply.id).reply_to_id is None
    _message(tenant, session, now, idempotency_key="k1", waha_message_id="false_x_1")  # free again
    db.session.commit()


def test_retention_drops_a_whole_month_and_what_pointed_into_it(pg, tenant, session):
    tenant.retention_messages_days, tenant.retention_events_days = 30, 7
    now = utcnow()
    old = partitions.month_start(now) - timedelta(days=45)  # a month entirely past both retentions
    old_name = partitions.partition_name("messages", partitions.month_start(old))
    storage().save("prune/partition.jpeg", b"jpeg", "image/jpeg")
    gone = _message(
        tenant,
        session,
        old,
        idempotency_key="old-key",
        waha_message_id="false_1@c.us_OLD",
        media={"status": "stored", "key": "prune/partition.jpeg"},
    )
    kept = _message(tenant, session, now, reply_to_id=gone.id)
    chat = Chat(tenant_id=tenant.id, session_id=session.id, chat_id="491701111111@c.us", last_message_id=gone.id)
    db.session.add(chat)
    db.session.add(
        WebhookEvent(
            event_id="evt_old", tenant_id=tenant.id, event="message", payload={}, status="done", received_at=old
        )
    )
    db.session.commit()

    counts = maintenance.prune()

    assert counts["partitions_dropped"] >= 2
    assert counts["messages"] == 1 and counts["media_files"] == 1 and counts["events"] == 1
    assert old_name not in _names("messages")
    assert partitions.partition_name("webhook_events", partitions.month_start(old)) not in _names("webhook_events")
    assert not storage().exists("prune/partition.jpeg")
    db.session.expire_all()
    assert db.session.get(Chat, chat.id).last_message_id is None
    assert db.session.get(Message, kept.id).reply_to_id is None
    with db.engine.connect() as conn:
        keys = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM message_idempotency_keys WHERE idempotency_key = 'old-key') "
                "+ (SELECT count(*) FROM message_waha_ids WHERE waha_message_id = 'false_1@c.us_OLD') "
                "+ (SELECT count(*) FROM webhook_event_keys WHERE event_id = 'evt_old')"
            )
        ).scalar_one()
    assert keys == 0  # the old rows' keys went with their month (a key another test's late event wrote is not ours)
    # this month and the ones ahead are never touched
    assert partitions.partition_name("messages", partitions.month_start(now)) in _names("messages")


def test_a_month_stays_while_a_tenant_keeps_rows_in_it(pg, tenant, session):
    from tests.builders import make_tenant

    tenant.retention_messages_days = 30
    patient = make_tenant("patient", name="Patient")
    patient.retention_messages_days = 3650
    old = partitions.month_start(utcnow()) - timedelta(days=45)
    short = _message(tenant, session, old, body="short retention")
    long = _message(patient, new_session(patient, "Archive"), old, body="long retention")
    db.session.commit()
    short_id, long_id = short.id, long.id

    counts = maintenance.prune()

    assert partitions.partition_name("messages", partitions.month_start(old)) in _names("messages")
    assert counts["messages"] == 1
    db.session.expire_all()
    assert db.session.get(Message, short_id) is None
    assert db.session.get(Message, long_id) is not None


def test_a_pending_event_keeps_its_month(pg, tenant, session):
    tenant.retention_events_days = 7
    old = partitions.month_start(utcnow()) - timedelta(days=45)
    db.session.add_all(
        [
            WebhookEvent(
                event_id="evt_pending",
                tenant_id=tenant.id,
                event="message",
                payload={},
                status="pending",
                received_at=old,
            ),
            WebhookEvent(
                event_id="evt_done", tenant_id=tenant.id, event="message", payload={}, status="done", received_at=old
            ),
        ]
    )
    db.session.commit()

    maintenance.prune()

    assert partitions.partition_name("webhook_events", partitions.month_start(old)) in _names("webhook_events")
    left = set(db.session.scalars(select(WebhookEvent.event_id).where(WebhookEvent.received_at == old)))
    assert left == {"evt_pending"}  # never lost before it is processed; the done one went


def test_a_query_bounded_in_time_reads_only_its_months(pg, tenant):
    now = utcnow()
    start = partitions.month_start(now)
    with db.engine.connect() as conn:
        plan = "\n".join(
            conn.execute(
                sa.text(
                    "EXPLAIN SELECT id FROM messages WHERE tenant_id = :t AND created_at >= :lo AND created_at < :hi "
                    "ORDER BY created_at DESC, id DESC LIMIT 50"
                ),
                {"t": tenant.id, "lo": start, "hi": start + timedelta(days=10)},
            ).scalars()
        )
        events_plan = "\n".join(
            conn.execute(
                sa.text("EXPLAIN SELECT id FROM webhook_events WHERE received_at >= :lo"), {"lo": start}
            ).scalars()
        )
    this_month = partitions.partition_name("messages", start)
    assert this_month in plan
    other_months = _names("messages") - {this_month}
    assert not [name for name in other_months if name in plan]
    # an open range reads this month and the ones ahead, none before
    before = {n for n in _names("webhook_events") if n < partitions.partition_name("webhook_events", start)}
    assert before and not [name for name in before if name in events_plan]


def test_ids_stay_unique_and_keep_counting_across_months(pg, tenant, session):
    now = utcnow()
    older = _message(tenant, session, _month_before(now))
    newer = _message(tenant, session, now)
    db.session.commit()
    assert newer.id > older.id
    assert db.session.get(Message, older.id).created_at.astimezone(UTC) == _month_before(now)


def test_a_month_whose_locks_cannot_be_had_now_is_dropped_by_the_next_run(pg, tenant, session, monkeypatch):
    tenant.retention_messages_days = 30
    old = partitions.month_start(utcnow()) - timedelta(days=45)
    old_name = partitions.partition_name("messages", partitions.month_start(old))
    gone_id = _message(tenant, session, old).id
    db.session.commit()
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "200ms")  # the real wait is 5 s

    reader = db.engine.connect()  # a long query still reading that month
    try:
        reader.execute(sa.text(f"SELECT count(*) FROM {old_name}"))
        maintenance.prune()  # no error: the month waits for the next run, its rows with it
        assert old_name in _names("messages")
        assert db.session.scalar(select(func.count()).where(Message.id == gone_id)) == 1
    finally:
        reader.rollback()
        reader.close()
    maintenance.prune()

    assert old_name not in _names("messages")
    assert db.session.scalar(select(func.count()).where(Message.id == gone_id)) == 0
