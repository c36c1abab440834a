"""Read receipts, typing presence and the rules of the actions on messages, at the service level: wahasim over
loopback, real PostgreSQL and Redis."""

from __future__ import annotations

from typing import Any

import pytest

from portal.extensions import db, redis_store
from portal.models import AuditEvent, Tenant
from portal.redisconn import fail_fast_client
from portal.services import messages, tenant_admin
from portal.services.errors import Conflict, Invalid, NotFound, Upstream
from tests.builders import TEST_ACTOR, make_tenant, stored_message
from tests.helpers import closed_port

CUSTOMER = "491709999999"
CHAT = f"{CUSTOMER}@c.us"


@pytest.fixture
def working(make_session):
    return make_session("Support", status="WORKING")


def _unread(sim: Any, session: Any, text: str = "hello?") -> str:
    return sim.inbound(session.external_name, from_=CUSTOMER, text=text)


# ---- read receipts ------------------------------------------------------------------------------------------------


def test_read_receipt_reaches_whatsapp(tenant, sim, working):
    first, second = _unread(sim, working, "one"), _unread(sim, working, "two")

    messages.send_read_receipt(tenant, working.id, CHAT)

    assert [(r["chatId"], r["ids"]) for r in sim.read_receipts(working.external_name)] == [(CHAT, [second, first])]


def test_read_receipt_takes_a_phone_number_for_the_chat(tenant, sim, working):
    message = _unread(sim, working)

    messages.send_read_receipt(tenant, working.id, f"+{CUSTOMER}")

    assert sim.read_receipts(working.external_name)[0]["ids"] == [message]


def test_read_receipts_turned_off_tell_whatsapp_nothing(tenant, sim, working):
    _unread(sim, working)
    tenant_admin.update_settings(tenant, TEST_ACTOR, read_receipts=False)

    messages.send_read_receipt(tenant, working.id, CHAT)

    assert sim.read_receipts(working.external_name) == []


def test_read_receipt_for_another_tenants_session_is_not_found(tenant, sim, working):
    other = make_tenant("globex", name="Globex")

    with pytest.raises(NotFound) as caught:
        messages.send_read_receipt(other, working.id, CHAT)

    assert caught.value.code == "session_not_found"
    assert sim.read_receipts(working.external_name) == []


def test_read_receipt_with_a_bad_chat_id_is_invalid(tenant, working):
    with pytest.raises(Invalid) as caught:
        messages.send_read_receipt(tenant, working.id, "someone@example.com")

    assert caught.value.details["fields"][0]["field"] == "chatId"


def test_read_receipt_needs_a_working_session(tenant, make_session):
    scanning = make_session("Sales", status="SCAN_QR_CODE")

    with pytest.raises(Conflict) as caught:
        messages.send_read_receipt(tenant, scanning.id, CHAT)

    assert caught.value.code == "session_not_ready"


def test_read_receipt_with_waha_down_is_upstream(tenant, sim, working):
    sim.fail_next(5, 503)

    with pytest.raises(Upstream):
        messages.send_read_receipt(tenant, working.id, CHAT)


# ---- typing -------------------------------------------------------------------------------------------------------


def test_typing_reaches_whatsapp_at_most_once_per_five_seconds_per_chat(tenant, sim, working):
    sent = [messages.send_typing(tenant, TEST_ACTOR, working.id, CHAT) for _ in range(3)]
    other_chat = messages.send_typing(tenant, TEST_ACTOR, working.id, "491701111111@c.us")

    assert (sent, other_chat) == ([True, False, False], True)
    log = sim.typing_log(working.external_name)
    assert [(t["chatId"], t["state"]) for t in log] == [(CHAT, "typing"), ("491701111111@c.us", "typing")]
    ttl = redis_store.client.ttl(f"typing:{working.id}:{CHAT}")
    assert 0 < ttl <= messages.actions.TYPING_EVERY_S


def test_typing_again_after_the_pause_reaches_whatsapp(tenant, sim, working):
    messages.send_typing(tenant, TEST_ACTOR, working.id, CHAT)
    redis_store.client.delete(f"typing:{working.id}:{CHAT}")  # as if five seconds passed

    assert messages.send_typing(tenant, TEST_ACTOR, working.id, CHAT) is True
    assert len(sim.typing_log(working.external_name)) == 2


def test_typing_is_skipped_silently_while_redis_is_down(tenant, sim, working, app, monkeypatch):
    monkeypatch.setattr(
        redis_store, "_client", fail_fast_client(f"redis://127.0.0.1:{closed_port()}/0", app.config["REDIS_TIMEOUT"])
    )

    assert messages.send_typing(tenant, TEST_ACTOR, working.id, CHAT) is False
    assert sim.typing_log(working.external_name) == []


def test_typing_is_skipped_silently_when_waha_fails(tenant, sim, working):
    sim.fail_next(5, 503)

    assert messages.send_typing(tenant, TEST_ACTOR, working.id, CHAT) is False


def test_typing_in_a_session_that_is_not_working_is_skipped(tenant, sim, make_session):
    scanning = make_session("Sales", status="SCAN_QR_CODE")

    assert messages.send_typing(tenant, TEST_ACTOR, scanning.id, CHAT) is False
    assert sim.typing_log(scanning.external_name) == []


def test_typing_in_another_tenants_session_is_not_found(tenant, working):
    with pytest.raises(NotFound):
        messages.send_typing(make_tenant("globex", name="Globex"), TEST_ACTOR, working.id, CHAT)


# ---- the read receipts setting ------------------------------------------------------------------------------------


def test_read_receipts_are_on_for_a_new_tenant(tenant):
    assert tenant.read_receipts is True


def test_turning_read_receipts_off_is_audited(tenant):
    changes = tenant_admin.update_settings(tenant, TEST_ACTOR, read_receipts=False)

    assert changes == {"read_receipts": (True, False)}
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.id).read_receipts is False
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "tenant.settings_update"))
    assert event.details == {"read_receipts": {"from": True, "to": False}}


def test_read_receipts_setting_must_be_on_or_off(tenant):
    with pytest.raises(Invalid):
        tenant_admin.update_settings(tenant, TEST_ACTOR, read_receipts="no")


# ---- rules of the actions (the API tests cover the calls) ----------------------------------------------------------


def test_edit_window_counts_from_whatsapps_timestamp_when_there_is_no_send_time(tenant, working):
    old = stored_message(
        tenant, working, chat_id=CHAT, waha_message_id=f"true_{CHAT}_OLD", wa_timestamp=1_000_000_000, source="app"
    )

    with pytest.raises(Conflict) as caught:
        messages.edit_message(tenant, TEST_ACTOR, old.id, "changed")

    assert caught.value.code == "edit_window_passed"


def test_edit_of_a_message_with_an_unknown_id_is_not_found(tenant, working):
    with pytest.raises(NotFound) as caught:
        messages.edit_message(tenant, TEST_ACTOR, 987654321, "x")

    assert caught.value.code == "message_not_found"


@pytest.mark.parametrize("emoji", ["👍", "", "🏳️‍🌈", "#️⃣", "👍🏽", "👨‍👩‍👧", "🇧🇷", "❤️"])
def test_one_emoji_or_nothing_is_a_reaction(emoji):
    assert messages.actions.clean_emoji(emoji) == emoji


@pytest.mark.parametrize("emoji", ["a", " 👍", "👍\n", "\u00a0", None, 5, "👍" * 17, "👍👍", "中文", "ok👍"])
def test_anything_else_is_not_a_reaction(emoji):
    with pytest.raises(Invalid):
        messages.actions.clean_emoji(emoji)
