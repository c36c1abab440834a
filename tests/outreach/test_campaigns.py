"""Campaigns end to end on the simulator: audience imported, numbers checked with check-exists, the rest sent
through the send queue's dispatcher; numbers not on WhatsApp skipped, opted-out numbers never sent to, STOP
from a recipient honoured, and advancing a campaign again (another worker, a restart) queues nobody twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import Campaign, CampaignRecipient, Message, OptOut
from portal.services import campaigns, events, optouts, outreach
from portal.services.outreach import rules
from tests.builders import TEST_ACTOR, envelope, inbound_payload, post_events
from tests.helpers import quiet_waha_webhooks


@pytest.fixture(autouse=True)
def _campaign_hooks(app: Any) -> Any:
    """The campaign gates and settle hook, registered as create_app does (and kept to this test)."""
    gates, listeners = list(rules._gates), list(rules._listeners)
    campaigns.register()
    app.config["CAMPAIGN_CHECK_RATE"] = 1000.0
    with quiet_waha_webhooks(app):
        yield
    rules._gates[:], rules._listeners[:] = gates, listeners


@pytest.fixture(autouse=True)
def _no_gap(tenant: Any) -> None:
    outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="UTC", gap_min=0, gap_max=0)


def _numbers(n: int, start: int = 1000000) -> list[str]:
    return [f"49170{start + i:07d}" for i in range(n)]


def _campaign(tenant: Any, session: Any, rows: list[str]) -> Campaign:
    content = ("phone,name\n" + "".join(f"+{p},Person {i}\n" for i, p in enumerate(rows))).encode()
    campaign = campaigns.create_campaign(
        tenant, TEST_ACTOR, name="Spring", session_ids=[session.id], template="Hi {{name}}!", csv_content=content
    )
    campaigns.import_audience(campaign.id)
    return campaign


def _sent_to(sim: Any, session: Any) -> Counter[str]:
    return Counter(m["chatId"].split("@")[0] for m in sim.sent_messages(session.external_name))


def test_two_hundred_recipients_with_invalid_and_opted_out_numbers(tenant, working, sim, dispatch):
    numbers = _numbers(200)
    absent, listed = numbers[:40], numbers[40:60]
    sim.mark_absent(absent)
    for number in listed:
        optouts.add(tenant, TEST_ACTOR, "+" + number)
    campaign = _campaign(tenant, working, numbers)
    assert campaign.state == "scheduled" and campaign.accepted == 180  # opted out refused at import

    assert campaigns.advance(campaign.id) == "running"
    dispatch(working.id, run_for=180.0, nap_max=5.0)
    assert campaigns.advance(campaign.id) == "completed"

    counts = campaigns.counts(db.session.get(Campaign, campaign.id))
    assert (counts.sent, counts.skipped, counts.opted_out, counts.failed, counts.queued) == (140, 40, 20, 0, 0)
    sent = _sent_to(sim, working)
    assert set(sent) == set(numbers[60:]) and set(sent.values()) == {1}
    bodies = {m["chatId"].split("@")[0]: m["body"] for m in sim.sent_messages(working.external_name)}
    assert bodies[numbers[60]] == "Hi Person 60!"
    reasons = set(
        db.session.scalars(
            select(CampaignRecipient.reason).where(
                CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "skipped"
            )
        )
    )
    assert reasons == {"not_on_whatsapp"}


def test_stop_from_a_recipient_stops_further_sends(client, tenant, working, sim, dispatch):
    numbers = _numbers(3, start=2000000)
    campaign = _campaign(tenant, working, numbers)
    campaigns.advance(campaign.id)  # checked and queued, nothing sent yet
    stop = envelope(working, "message", inbound_payload("  Stop! ", sender=numbers[1]))
    assert post_events(client, working, stop).status_code == 200
    events.drain()
    assert db.session.scalar(select(OptOut.source).where(OptOut.chat_id == f"{numbers[1]}@c.us")) == "keyword"

    dispatch(working.id, nap_max=5.0)

    assert set(_sent_to(sim, working)) == {numbers[0], numbers[2]}
    state = db.session.scalar(select(CampaignRecipient.state).where(CampaignRecipient.chat_id == f"{numbers[1]}@c.us"))
    assert state == "opted_out"


@pytest.mark.parametrize("text", ["STOP", "unsubscribe", "Parar.", "BAJA", "abmelden", "Cancelar suscripcion"])
def test_opt_out_keywords_match_whole_messages_without_case_or_accents(text):
    keywords = {optouts.normalize(k) for k in optouts.DEFAULT_KEYWORDS}
    assert optouts.normalize(text) in keywords
    assert optouts.normalize(f"please {text} now") not in keywords


def test_advancing_again_queues_nobody_twice(tenant, working, sim, dispatch):
    numbers = _numbers(30, start=3000000)
    campaign = _campaign(tenant, working, numbers)
    campaigns.advance(campaign.id)
    campaigns.advance(campaign.id)  # a second worker, or the periodic tick after a restart
    dispatch(working.id, run_for=120.0, nap_max=5.0)
    campaigns.advance(campaign.id)
    assert set(_sent_to(sim, working).values()) == {1} and len(_sent_to(sim, working)) == 30


def test_paused_campaign_holds_its_queued_messages_until_resumed(tenant, working, sim, dispatch):
    campaign = _campaign(tenant, working, _numbers(5, start=4000000))
    campaigns.advance(campaign.id)
    campaigns.pause_campaign(tenant, TEST_ACTOR, campaign.id)
    dispatch(working.id, run_for=2.0)
    assert _sent_to(sim, working) == Counter()
    campaigns.resume_campaign(tenant, TEST_ACTOR, campaign.id)
    dispatch(working.id, nap_max=5.0)
    assert len(_sent_to(sim, working)) == 5


def test_campaign_on_a_session_that_is_not_working_does_not_start(tenant, sim):
    from tests.builders import scanning_session

    session = scanning_session(tenant, "Idle")
    campaign = _campaign(tenant, session, _numbers(2, start=5000000))
    assert campaigns.advance(campaign.id) == "scheduled"
    assert "WORKING" in (db.session.get(Campaign, campaign.id).error or "")


_RUN_AND_DIE = """
import sys
from portal import create_app
from portal.config import environ_for_tests
from portal.services import campaigns, outreach
app = create_app(environ_for_tests(WAHA_BASE_URL=sys.argv[1], CAMPAIGN_CHECK_RATE="1000"))
with app.app_context():
    campaigns.advance(int(sys.argv[2]))
    print("queued", flush=True)
    outreach.run(sys.argv[3], run_for=120, nap_max=5)   # killed in the middle of this
"""


def test_a_worker_killed_during_a_campaign_sends_nobody_twice_and_skips_nobody(app, tenant, working, sim, dispatch):
    from datetime import timedelta

    from portal.extensions import redis_store
    from portal.models import utcnow
    from portal.services.outreach.dispatch import STALE_SENDING
    from portal.services.outreach.queue import LOCK_KEY
    from tests.helpers import wait_for

    numbers = _numbers(40, start=6000000)
    campaign = _campaign(tenant, working, numbers)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    worker = subprocess.Popen(
        [sys.executable, "-c", _RUN_AND_DIE, sim.url, str(campaign.id), working.id],
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == b"queued"
        wait_for(lambda: len(sim.sent_messages(working.external_name)) >= 8, timeout=60)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert len(sim.sent_messages(working.external_name)) < 40  # it died mid-campaign

    redis_store.client.delete(LOCK_KEY + working.id)  # the dead dispatcher's lock expiring (30 s), fast-forwarded
    # The same minutes pass for the message row it may have committed just before dying (send_state "sending"):
    # a retry under its key then calls WAHA again with the same WhatsApp id (deduplicated) instead of answering
    # the row as a send still under way.
    db.session.execute(
        update(Message)
        .where(Message.send_state == "sending")
        .values(updated_at=utcnow() - STALE_SENDING - timedelta(seconds=1))
    )
    db.session.commit()
    outreach.sweep(now=utcnow() + STALE_SENDING + timedelta(seconds=1))  # its claimed item goes back to the queue
    dispatch(working.id, run_for=180.0, nap_max=5.0)
    campaigns.advance(campaign.id)

    sent = _sent_to(sim, working)
    assert set(sent) == set(numbers) and set(sent.values()) == {1}
    counts = campaigns.counts(db.session.get(Campaign, campaign.id))
    assert (counts.sent, counts.skipped, counts.failed) == (40, 0, 0)
    assert db.session.get(Campaign, campaign.id).state == "completed"


def test_opt_out_is_confirmed_once_when_the_tenant_asks_for_it(client, tenant, working, sim, run_jobs):
    optouts.update_settings(tenant, TEST_ACTOR, keywords=["STOP", "Não quero"], confirm=True, confirm_text="Done.")
    for text in ("nao QUERO", "stop"):  # the second keyword finds the number listed already: no second reply
        stop = envelope(working, "message", inbound_payload(text, sender="491708888888"))
        assert post_events(client, working, stop).status_code == 200
        events.drain()
        run_jobs()
    assert [m["body"] for m in sim.sent_messages(working.external_name)] == ["Done."]
    assert db.session.scalar(select(OptOut.source).where(OptOut.chat_id == "491708888888@c.us")) == "keyword"


def test_cancelled_campaign_takes_its_waiting_messages_out_of_the_queue(tenant, working, sim, dispatch):
    from portal.models import QueuedSend

    campaign = _campaign(tenant, working, _numbers(4, start=7000000))
    campaigns.advance(campaign.id)
    campaigns.cancel_campaign(tenant, TEST_ACTOR, campaign.id)
    dispatch(working.id, run_for=2.0)
    assert _sent_to(sim, working) == Counter()
    assert set(db.session.scalars(select(QueuedSend.state))) == {"cancelled"}
    counts = campaigns.counts(db.session.get(Campaign, campaign.id))
    assert (counts.queued, counts.skipped) == (0, 4)


def test_a_second_capping_warning_midway_pauses_the_campaign_and_replies_still_go_out(tenant, working, sim, dispatch):
    from portal.models import AuditEvent
    from portal.services import messages, number_health

    numbers = _numbers(40, start=6000000)
    campaign = _campaign(tenant, working, numbers)
    campaigns.advance(campaign.id)
    sent: list[int] = []

    def warn_after_ten(item: Any) -> None:
        if item.state == "sent":
            sent.append(item.id)
            if len(sent) == 10:  # WhatsApp warns a second time: the scheduler reads it
                sim.set_capping(working.external_name, "SECOND_WARNING", total=1000, used=900)
                number_health.check_session(working.id)

    rules.on_settled(warn_after_ten)
    dispatch(working.id, run_for=20.0, nap_max=2.0)

    paused = db.session.get(Campaign, campaign.id)
    delivered = _sent_to(sim, working)
    assert paused.state == "paused" and "SECOND_WARNING" in (paused.error or "")
    assert 10 <= len(delivered) < 40 and set(delivered.values()) == {1}
    pause = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "campaign.pause"))
    assert pause is not None and pause.details["capping"] == "SECOND_WARNING"
    # a reply to someone who got the campaign goes out while the campaign waits
    reply = messages.send_message(tenant, working.id, TEST_ACTOR, to="+" + numbers[0], text="Thanks for asking!")
    assert reply.status in ("PENDING", "SERVER")
    assert _sent_to(sim, working)[numbers[0]] == 2


def test_campaign_quiet_hours_follow_the_tenants_clock(tenant, working):
    from datetime import UTC, datetime

    from portal.services.campaigns.dispatch import _in_quiet

    outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="America/Sao_Paulo", gap_min=0, gap_max=0)
    campaign = _campaign(tenant, working, _numbers(1, start=7000000))
    campaign.quiet_start, campaign.quiet_end = 22 * 60, 7 * 60  # 22:00-07:00 in São Paulo (UTC-3)
    db.session.commit()

    at_23_local = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
    at_noon_local = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)

    assert _in_quiet(campaign, at_23_local) == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)  # 07:00 local
    assert _in_quiet(campaign, at_noon_local) is None
