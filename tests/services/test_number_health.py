"""Number health: WhatsApp's reach-out timelock and new-chat capping, read from the simulator, acted on in sends,
told to the tenant once per episode, and never a reason to restart a session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.mail import outbox
from portal.models import AuditEvent, Message, WahaServer, WahaSession, WebhookDelivery
from portal.services import forwarding, maintenance, messages, number_health
from portal.services.errors import Conflict
from tests.builders import TEST_ACTOR, make_user
from tests.helpers import quiet_waha_webhooks

KNOWN = "491705550001"
NEW = "491705550002"


@pytest.fixture(autouse=True)
def _quiet(app: Any, tenant: Any) -> Any:
    outbox.clear()
    tenant.send_rate_per_minute = 6000
    db.session.commit()
    with quiet_waha_webhooks(app):
        yield


@pytest.fixture
def working(make_session: Any) -> WahaSession:
    return make_session("Sales", status="WORKING")


@pytest.fixture
def endpoint(tenant: Any) -> Any:
    """An endpoint nothing needs to answer: the tests check the planned deliveries."""
    return forwarding.create_endpoint(tenant, TEST_ACTOR, url="http://127.0.0.1:9/limits", events=["session.limited"])


def _row(session_id: str) -> WahaSession:
    db.session.expire_all()
    return db.session.get(WahaSession, session_id)


def _limited_deliveries() -> list[WebhookDelivery]:
    return list(db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_type == "session.limited")))


def _sends() -> int:
    return db.session.scalar(select(func.count(Message.id)).where(Message.direction == "out")) or 0


def test_a_timelock_blocks_new_contacts_until_it_ends_while_replies_go_out(tenant, sim, working):
    messages.send_message(tenant, working.id, TEST_ACTOR, to=KNOWN, text="earlier chat")
    sim.set_timelock(working.external_name, True, seconds=3600)

    number_health.check(_row(working.id))
    db.session.commit()
    session = _row(working.id)
    before = _sends()

    assert session.limit_level == "limited"
    until = session.new_contacts_blocked_until.replace(tzinfo=UTC)
    assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(hours=1)
    with pytest.raises(Conflict) as refused:
        messages.send_message(tenant, working.id, TEST_ACTOR, to=NEW, text="cold outreach")
    assert refused.value.code == "new_contact_limited"
    assert refused.value.details["until"] == until.isoformat()
    assert _sends() == before  # refused before anything was written or sent
    reply = messages.send_message(tenant, working.id, TEST_ACTOR, to=KNOWN, text="a reply")
    assert reply.status in ("PENDING", "SERVER")
    assert [m["body"] for m in sim.sent_messages(working.external_name)] == ["earlier chat", "a reply"]


def test_whatsapps_463_refusal_unknown_to_the_portal_fails_unsent_and_reads_the_limits(tenant, sim, working, run_jobs):
    sim.set_timelock(working.external_name, True, seconds=600)  # the portal has not read it yet

    with pytest.raises(Conflict) as refused:
        messages.send_message(tenant, working.id, TEST_ACTOR, to=NEW, text="hello")
    run_jobs()

    assert refused.value.code == "new_contact_limited"
    assert refused.value.details["whatsappCode"] == 463 and refused.value.details["outcome"] == "unsent"
    failed = db.session.scalar(select(Message).where(Message.id == refused.value.details["messageId"]))
    assert failed.status == "ERROR"  # WhatsApp never took it: a retry with the same key may send it later
    assert _row(working.id).limit_level == "limited"
    assert _row(working.id).status == "WORKING"


def test_capped_refuses_new_chats_with_475_and_warnings_only_warn(tenant, sim, working):
    sim.set_capping(working.external_name, "FIRST_WARNING", total=100)
    number_health.check(_row(working.id))
    db.session.commit()
    assert _row(working.id).limit_level == "warning"
    assert _row(working.id).new_contacts_blocked_until is None
    messages.send_message(tenant, working.id, TEST_ACTOR, to=NEW, text="still allowed")

    sim.set_capping(working.external_name, "CAPPED", total=100)
    with pytest.raises(Conflict) as refused:
        messages.send_message(tenant, working.id, TEST_ACTOR, to="491705550003", text="over the cap")

    assert refused.value.details["whatsappCode"] == 475 and refused.value.details["reason"] == "capped"


def test_owners_and_admins_are_told_once_per_level_of_an_episode(tenant, owner, sim, working, endpoint):
    make_user(tenant, "admin", email="admin@example.com")
    make_user(tenant, "viewer", email="viewer@example.com")
    name = working.external_name

    sim.set_capping(name, "FIRST_WARNING")
    number_health.check_session(working.id)
    number_health.check_session(working.id)  # same reading: nothing new to tell
    warned = sorted(m.to for m in outbox)
    sim.set_capping(name, "CAPPED")
    number_health.check_session(working.id)
    sim.set_capping(name, "NONE", total=-1)
    number_health.check_session(working.id)
    sim.set_timelock(name, True)
    number_health.check_session(working.id)

    assert warned == sorted([owner.email, "admin@example.com"])
    levels = [d.payload["payload"]["level"] for d in sorted(_limited_deliveries(), key=lambda d: d.id)]
    assert levels == ["warning", "limited", "limited"]  # the third is a new episode after the cap lifted
    assert len(outbox) == 6
    changes = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "session.limits_changed").order_by(AuditEvent.id)
    ).all()
    assert [(c.details["from"], c.details["to"]) for c in changes] == [
        ("ok", "warning"),
        ("warning", "limited"),
        ("limited", "ok"),
        ("ok", "limited"),
    ]


def test_the_scheduled_check_reads_every_working_session_once_per_interval(tenant, sim, make_session, waha_requests):
    first = make_session("One", status="WORKING")
    second = make_session("Two", status="WORKING")
    make_session("Idle")  # not WORKING: nothing to read
    waha_requests.clear()

    assert number_health.check_due() == 2
    assert number_health.check_due() == 0  # read a moment ago

    assert waha_requests.count("GET", "/timelock") == 2 and waha_requests.count("GET", "/capping") == 2
    assert {_row(first.id).limit_level, _row(second.id).limit_level} == {"ok"}


def test_the_sync_takes_the_limits_waha_puts_in_me_without_asking(tenant, sim, working, waha_requests):
    sim.set_timelock(working.external_name, True, seconds=900)
    waha_requests.clear()

    maintenance.sync_server(db.session.scalar(select(WahaServer)))

    assert waha_requests.entries == [("GET", "/api/sessions")]
    assert _row(working.id).limit_level == "limited"


def test_a_limited_session_is_never_restarted_logged_out_or_repaired(tenant, sim, working, waha_requests):
    sim.set_timelock(working.external_name, True)
    sim.set_capping(working.external_name, "CAPPED")
    number_health.check(_row(working.id))
    db.session.commit()
    waha_requests.clear()

    maintenance.sync_server(db.session.scalar(select(WahaServer)))
    maintenance.watchdog()

    touched = [p for m, p in waha_requests.entries if m != "GET"]
    assert touched == []
    assert sim.session(working.external_name)["status"] == "WORKING"
    assert _row(working.id).status == "WORKING" and _row(working.id).attention is None


def test_a_timelock_that_ended_lets_new_contacts_through_again(tenant, sim, working):
    sim.set_timelock(working.external_name, True, seconds=1)
    number_health.check(_row(working.id))
    session = _row(working.id)
    session.new_contacts_blocked_until = datetime.now(UTC) - timedelta(seconds=1)  # it ended meanwhile
    db.session.commit()
    sim.set_timelock(working.external_name, False)

    message = messages.send_message(tenant, working.id, TEST_ACTOR, to=NEW, text="welcome back")

    assert message.status in ("PENDING", "SERVER")


def test_readings_with_values_whatsapp_added_later_are_a_warning_not_an_error() -> None:
    now = datetime.now(UTC)
    later = (now + timedelta(days=3)).timestamp()

    assert number_health.assess(None, {"cappingStatus": "THIRD_WARNING"}, now) == ("warning", None)
    assert number_health.assess({"isActive": True, "timeEnforcementEnds": 0}, None, now)[0] == "limited"
    level, until = number_health.assess(None, {"cappingStatus": "CAPPED", "cycleEnd": later}, now)
    assert level == "limited" and until == datetime.fromtimestamp(later, tz=UTC)
    assert number_health.assess({"isActive": False, "timeEnforcementEnds": later}, None, now) == ("ok", None)
