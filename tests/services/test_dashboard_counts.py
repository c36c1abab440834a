"""The dashboard's counts of the day: kept in Redis up to a moment each view moves forward, so a view reads only
the rows since; still exact after more messages, failed sends retried, deleted sessions, erased contacts and
while Redis is down."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.extensions import db, redis_store
from portal.services import dashboard, outbox, privacy
from portal.services.sessions import delete_session
from tests.builders import TEST_ACTOR, make_tenant, stored_message, working_session
from tests.helpers import unreachable_redis


def noon():
    """The moment the views happen at: noon of today, so that minutes before it are today at any time of day."""
    return dashboard.start_of_day() + timedelta(hours=12)


def counts(tenant, now=None) -> tuple[int, int, int]:
    summary = dashboard.summary(tenant, now=now or noon())
    return summary.messages_in_today, summary.messages_out_today, summary.failed_sends_today


def kept(tenant) -> dict:
    key = dashboard.TODAY_KEY.format(tenant_id=tenant.id, day=dashboard.start_of_day().date().isoformat())
    return {k.decode(): v.decode() for k, v in redis_store.client.hgetall(key).items()}


def at(minutes_ago: float):
    return noon() - timedelta(minutes=minutes_ago)


@pytest.mark.smoke
def test_the_day_is_counted_once_then_only_the_rows_since(tenant, sim):
    session = working_session(tenant, sim)
    day = dashboard.start_of_day()
    for minutes in (30, 20, 10):
        stored_message(tenant, session, direction="in", status="DEVICE", created_at=at(minutes))
    stored_message(tenant, session, direction="out", status="READ", created_at=at(15))
    stored_message(tenant, session, direction="out", status="SERVER", created_at=at(0.5))  # not sealed yet
    stored_message(tenant, session, direction="in", status="DEVICE", created_at=day - timedelta(minutes=1))

    assert counts(tenant) == (3, 2, 0)
    first = kept(tenant)
    assert (first["in"], first["out"]) == ("3", "1")  # the row of half a minute ago is counted live, not kept

    stored_message(tenant, session, direction="in", status="DEVICE", created_at=at(0.2))
    assert counts(tenant) == (4, 2, 0)
    assert counts(tenant, now=noon() + dashboard.SEAL) == (4, 2, 0)  # the recent rows move into the kept counts
    assert (kept(tenant)["in"], kept(tenant)["out"]) == ("4", "2")


def test_a_failed_send_is_counted_while_it_stays_failed(tenant, sim):
    session = working_session(tenant, sim)
    failed = stored_message(tenant, session, direction="out", status="ERROR", created_at=at(30), send_state="unsent")
    failed.waha_message_id = "true_491709999999@c.us_3EB0AAAA"
    db.session.commit()
    assert counts(tenant) == (0, 1, 1)

    assert outbox.claim(failed, "unsent")  # a retry with the same Idempotency-Key takes it back to PENDING
    db.session.commit()

    assert counts(tenant) == (0, 1, 0)


def test_deleting_a_session_takes_its_messages_out_of_the_day(tenant, sim):
    kept_session = working_session(tenant, sim, "Kept")
    gone = working_session(tenant, sim, "Gone", phone="491702222222")
    stored_message(tenant, kept_session, direction="in", status="DEVICE", created_at=at(20))
    for _ in range(2):
        stored_message(tenant, gone, direction="in", status="DEVICE", created_at=at(20))
    assert counts(tenant) == (3, 0, 0)

    delete_session(tenant, gone.id, TEST_ACTOR)

    assert counts(tenant) == (1, 0, 0)


def test_erasing_a_contact_takes_their_messages_out_of_the_day(tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, direction="in", status="DEVICE", chat_id="491701111111@c.us", created_at=at(20))
    stored_message(tenant, session, direction="in", status="DEVICE", chat_id="491709999999@c.us", created_at=at(20))
    assert counts(tenant) == (2, 0, 0)

    privacy.erase_contact(tenant, TEST_ACTOR, privacy.by_phone(tenant, "+491701111111"))

    assert counts(tenant) == (1, 0, 0)


def test_a_view_that_counted_before_a_deletion_keeps_nothing(tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, direction="in", status="DEVICE", created_at=at(20))
    since, now = dashboard.start_of_day(), noon()
    read = dashboard._kept(tenant.id, since)  # a view reads the kept counts ...

    dashboard.forget_today(tenant.id)  # ... messages are deleted meanwhile ...
    dashboard._keep(tenant.id, since, dashboard._Kept(now, 1, 0, read.gen))  # ... and it tries to keep its count

    assert "upto" not in kept(tenant)


def test_other_tenants_rows_stay_out_of_the_counts(tenant, sim):
    other = make_tenant("globex", name="Globex")
    stored_message(other, working_session(other, sim, "Globex"), direction="in", status="DEVICE", created_at=at(20))
    assert counts(tenant) == (0, 0, 0)
    assert counts(other) == (1, 0, 0)


def test_the_counts_are_live_while_redis_is_down(tenant, sim, monkeypatch):
    session = working_session(tenant, sim)
    stored_message(tenant, session, direction="in", status="DEVICE", created_at=at(20))
    stored_message(tenant, session, direction="out", status="ERROR", created_at=at(20))
    monkeypatch.setattr(redis_store, "_client", unreachable_redis())

    assert counts(tenant) == (1, 1, 1)


def test_the_counts_are_kept_after_redis_forgot_its_scripts(tenant, sim):
    session = working_session(tenant, sim)
    stored_message(tenant, session, direction="in", status="DEVICE", created_at=at(20))
    redis_store.client.script_flush()  # as after a Redis restart

    assert counts(tenant) == (1, 0, 0)
    assert kept(tenant)["in"] == "1"
