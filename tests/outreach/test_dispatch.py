"""The dispatcher's timing rules on the simulator: the gap between campaign messages (every gap within 10 % of
the configured one), typing presence before each, quiet hours in the tenant's time zone, campaign traffic never
spending the burst that single sends need, and scheduled messages held (and marked late) while the session is
not WORKING."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, OutreachSettings, QueuedSend, utcnow
from portal.services import outreach, sessions
from portal.services.errors import Invalid
from portal.services.outreach.settings import Outreach
from tests.builders import TEST_ACTOR, wait_for_status

CHAT = "491709999999@c.us"


def _settings(tenant, **values) -> None:
    outreach.update_outreach_settings(tenant, TEST_ACTOR, **{"time_zone": "UTC", **values})


def _campaign(tenant, session, count, **extra) -> None:
    outreach.enqueue_many(
        tenant,
        [{"session_id": session.id, "chat_id": CHAT, "body": f"offer {n}", **extra} for n in range(count)],
        actor=TEST_ACTOR,
    )


def test_campaign_messages_keep_the_configured_gap(tenant, working, sim, dispatch, arrivals):
    _settings(tenant, gap_min=1.5, gap_max=1.5)
    _campaign(tenant, working, 4)

    dispatch(working.id, nap_max=2)

    sent = arrivals.times("/api/sendText")
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert len(sent) == 4
    assert all(1.35 <= gap <= 1.65 for gap in gaps), gaps


def test_random_gaps_stay_within_the_configured_range(tenant, working, sim, dispatch, arrivals):
    _settings(tenant, gap_min=0.5, gap_max=1.0)
    _campaign(tenant, working, 5)

    dispatch(working.id, nap_max=2)

    sent = arrivals.times("/api/sendText")
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert len(sent) == 5
    assert all(0.45 <= gap <= 1.1 for gap in gaps), gaps
    assert max(gaps) - min(gaps) > 0.01  # drawn, not fixed


def test_typing_presence_comes_before_each_campaign_message(tenant, working, sim, dispatch, arrivals):
    _settings(tenant, gap_min=1.0, gap_max=1.0)
    _campaign(tenant, working, 2, typing=True)

    dispatch(working.id, nap_max=2)

    log = sim.typing_log(working.external_name)
    assert [entry["state"] for entry in log] == ["typing", "paused", "typing", "paused"]
    starts, sends = arrivals.times("/startTyping"), arrivals.times("/api/sendText")
    assert len(starts) == 2 and all(start < send for start, send in zip(starts, sends, strict=True))
    assert 0.9 <= sends[1] - sends[0] <= 1.1  # typing happens inside the gap, not on top of it


def test_campaign_traffic_leaves_the_burst_to_single_sends(tenant, working, sim, dispatch):
    tenant.send_rate_per_minute = 60  # one a second, a burst of 1..10 for single sends
    db.session.commit()
    _settings(tenant, gap_min=0, gap_max=0)
    _campaign(tenant, working, 3)

    report = dispatch(working.id, nap_max=0.5)

    # the first campaign message takes the only free slot without burst; the next waits its second
    assert report.sent == 1 and report.held


def test_quiet_hours_hold_campaign_traffic_in_the_tenants_time_zone(tenant, working, sim, dispatch):
    zone = "Asia/Kolkata"  # UTC+05:30: an hour boundary in UTC is a half hour there
    local_now = utcnow().astimezone(__import__("zoneinfo").ZoneInfo(zone))
    start = (local_now - timedelta(minutes=30)).time().replace(second=0, microsecond=0)
    end = (local_now + timedelta(minutes=90)).time().replace(second=0, microsecond=0)
    _settings(tenant, time_zone=zone, quiet_start=start.strftime("%H:%M"), quiet_end=end.strftime("%H:%M"))
    _campaign(tenant, working, 1)
    outreach.enqueue(tenant, working.id, CHAT, body="receipt", actor=TEST_ACTOR)

    report = dispatch(working.id)

    assert [m["body"] for m in sim.sent_messages(working.external_name)] == ["receipt"]
    held = db.session.scalar(select(QueuedSend).where(QueuedSend.lane == "campaign"))
    assert (held.state, held.hold_reason, report.held) == ("queued", "quiet hours", True)
    step = outreach.plan(working.id, set())
    ends = datetime.combine(local_now.date(), end, tzinfo=local_now.tzinfo)
    if ends < local_now:
        ends += timedelta(days=1)
    assert step.item is None and step.wait_until == ends.astimezone(UTC)


def test_quiet_hours_span_midnight_and_follow_daylight_saving():
    berlin = Outreach(time_zone="Europe/Berlin", quiet_start=time(22, 0), quiet_end=time(7, 0))

    # 23:30 Berlin in winter (UTC+1) -> quiet until 07:00 the next morning, 06:00 UTC
    assert berlin.quiet_until(datetime(2026, 1, 10, 22, 30, tzinfo=UTC)) == datetime(2026, 1, 11, 6, 0, tzinfo=UTC)
    # 05:00 Berlin in summer (UTC+2) -> quiet until 07:00, 05:00 UTC
    assert berlin.quiet_until(datetime(2026, 7, 10, 3, 0, tzinfo=UTC)) == datetime(2026, 7, 10, 5, 0, tzinfo=UTC)
    # the night the clocks go forward (29 March 2026): 07:00 CEST is 05:00 UTC
    assert berlin.quiet_until(datetime(2026, 3, 29, 0, 30, tzinfo=UTC)) == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    # noon: not quiet
    assert berlin.quiet_until(datetime(2026, 7, 10, 10, 0, tzinfo=UTC)) is None
    # same-day window in New York (UTC-5 in January): 12:00-13:00 local
    lunch = Outreach(time_zone="America/New_York", quiet_start=time(12, 0), quiet_end=time(13, 0))
    assert lunch.quiet_until(datetime(2026, 1, 5, 17, 15, tzinfo=UTC)) == datetime(2026, 1, 5, 18, 0, tzinfo=UTC)
    assert lunch.quiet_until(datetime(2026, 1, 5, 16, 59, tzinfo=UTC)) is None


def test_a_scheduled_message_waits_for_a_working_session_and_is_marked_late(tenant, working, sim, dispatch):
    item = outreach.schedule_message(
        tenant, working.id, TEST_ACTOR, to=CHAT, text="on time?", send_at=utcnow() + timedelta(seconds=1)
    )
    sessions.stop_session(tenant, working.id, TEST_ACTOR)
    wait_for_status(tenant, working, "STOPPED")
    db.session.execute(
        QueuedSend.__table__.update().where(QueuedSend.id == item.id).values(not_before=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()

    report = dispatch(working.id, nap_max=0)

    row = db.session.get(QueuedSend, item.id)
    assert (row.state, row.late, row.hold_reason, report.held) == ("queued", True, "session is STOPPED", True)
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "outreach.late")) is not None
    dispatch(working.id, nap_max=0)  # told once
    assert len(list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "outreach.late")))) == 1

    sessions.start_session(tenant, working.id, TEST_ACTOR)  # the phone is still linked: WORKING again
    wait_for_status(tenant, working, "WORKING")
    dispatch(working.id)
    assert db.session.get(QueuedSend, item.id).state == "sent"
    assert [m["body"] for m in sim.sent_messages(working.external_name)] == ["on time?"]


def test_settings_refuse_bad_input_and_keep_what_was_saved(tenant):
    _settings(tenant, time_zone="Europe/Lisbon", gap_min=2, gap_max=4)
    bad = [
        {"time_zone": "Mars/Olympus"},
        {"quiet_start": "22:00"},  # without an end
        {"quiet_start": "25:00", "quiet_end": "07:00"},
        {"gap_min": 5, "gap_max": 1},
        {"gap_min": -1},
        {"gap_max": "soon"},
    ]
    for values in bad:
        with pytest.raises(Invalid):
            _settings(tenant, **values)
    assert outreach.outreach_settings(tenant.id) == Outreach(time_zone="Europe/Lisbon", gap_min=2, gap_max=4)


def test_default_settings_without_a_row(tenant):
    assert db.session.get(OutreachSettings, tenant.id) is None
    assert outreach.outreach_settings(tenant.id) == Outreach()
