"""The message log as a person watching it sees it: which page is live, what its fresh block holds, when the page
polls and when it stops, and what a refused cursor or filter does. (A conversation is the inbox's thread:
tests/web/test_inbox_thread.py.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from portal.extensions import db
from portal.models import Message, utcnow
from portal.services import messages
from portal.services.messages import FRESH_LIMIT, LogFilters
from portal.services.messages.reading import FRESH_OVERLAP, TICK_WINDOW
from tests.builders import new_session, stored_message

CHAT = "491709999999@c.us"


@pytest.fixture
def session(tenant: Any, sim: Any) -> Any:
    return new_session(tenant, "Sales")


def _message(tenant: Any, session: Any, minutes_ago: float, **fields: Any) -> Message:
    return stored_message(tenant, session, created_at=utcnow() - timedelta(minutes=minutes_ago), **fields)


def test_newest_log_page_is_live_with_its_newest_rows_in_the_fresh_block(tenant, session):
    old = _message(tenant, session, 180, status="READ")
    new = _message(tenant, session, 1, status="READ")
    view = messages.watch_log(tenant, LogFilters(), cursor=None)
    assert (view.newest, view.live, view.polling, view.keeps_polling) == (True, True, False, True)
    assert [m.id for m in view.fresh_items] == [new.id]
    assert [m.id for m in view.settled_items] == [old.id]
    assert view.fresh_since == new.created_at - FRESH_OVERLAP


def test_fresh_block_starts_before_a_recent_message_still_waiting_for_its_tick(tenant, session):
    waiting = _message(tenant, session, 20, direction="out", status="SERVER")
    newest = _message(tenant, session, 1, direction="in", status="READ")
    view = messages.watch_log(tenant, LogFilters(), cursor=None)
    assert view.fresh_since == waiting.created_at - FRESH_OVERLAP
    assert [m.id for m in view.fresh_items] == [newest.id, waiting.id]


def test_empty_newest_log_page_polls_as_a_whole_until_its_first_row(tenant, session):
    view = messages.watch_log(tenant, LogFilters(), cursor=None)
    assert (view.newest, view.live, view.polling, view.keeps_polling) == (True, False, True, True)


@pytest.mark.parametrize("status,polls", [("PENDING", True), ("DEVICE", True), ("READ", False), ("ERROR", False)])
def test_older_log_page_polls_only_while_a_recent_tick_may_change(tenant, session, status, polls):
    _message(tenant, session, 5, direction="out", status=status)
    newest = _message(tenant, session, 1, status="READ")
    view = messages.watch_log(tenant, LogFilters(), cursor=messages.encode_cursor(newest))
    assert (view.newest, view.live, view.fresh_items) == (False, False, [])
    assert (view.polling, view.keeps_polling) == (polls, polls)


def test_older_log_page_does_not_poll_for_a_tick_older_than_the_window(tenant, session):
    _message(tenant, session, TICK_WINDOW.total_seconds() / 60 + 5, direction="out", status="PENDING")
    newest = _message(tenant, session, 1, status="READ")
    view = messages.watch_log(tenant, LogFilters(), cursor=messages.encode_cursor(newest))
    assert not view.keeps_polling


def test_log_whose_dates_have_passed_is_not_live(tenant, session):
    _message(tenant, session, 60 * 48)
    view = messages.watch_log(tenant, LogFilters(until=utcnow() - timedelta(days=1)), cursor=None)
    assert len(view.items) == 1
    assert (view.newest, view.live, view.polling, view.keeps_polling) == (False, False, False, False)


def test_mangled_log_cursor_shows_the_newest_page_and_keeps_it_still(tenant, session):
    message = _message(tenant, session, 1)
    view = messages.watch_log(tenant, LogFilters(), cursor="not-a-cursor")
    assert view.stale_cursor and view.refusal is None
    assert (view.cursor, [m.id for m in view.items]) == (None, [message.id])
    assert (view.settled, view.newest, view.keeps_polling) == (False, False, False)


def test_refused_log_filter_shows_nothing_and_says_why(tenant, session):
    _message(tenant, session, 1)
    view = messages.watch_log(tenant, LogFilters(direction="sideways"), cursor=None)
    assert view.refusal == 'Direction must be "in" or "out".' and not view.stale_cursor
    assert (view.items, view.settled, view.keeps_polling) == ([], False, False)


def test_log_read_with_unreadable_filters_stays_still(tenant, session):
    _message(tenant, session, 1)
    view = messages.watch_log(tenant, LogFilters(), cursor=None, settled=False)
    assert len(view.items) == 1 and not view.keeps_polling


def test_filters_say_whether_they_narrow_the_log():
    assert not LogFilters().any()
    assert LogFilters(q="invoice").any()


def test_log_fresh_block_reads_from_the_later_of_its_start_and_the_filter(tenant, session):
    _message(tenant, session, 30)
    recent = _message(tenant, session, 5)
    since = utcnow() - timedelta(hours=1)
    rows = messages.watch_log_fresh(tenant, LogFilters(since=utcnow() - timedelta(minutes=10)), since)
    assert ([m.id for m in rows.items], rows.overflow) == ([recent.id], False)


def test_log_fresh_block_says_when_more_arrived_than_it_shows(tenant, session):
    created = utcnow() - timedelta(minutes=1)
    db.session.add_all(
        Message(
            tenant_id=tenant.id, session_id=session.id, direction="in", chat_id=CHAT, body=f"m{i}", created_at=created
        )
        for i in range(FRESH_LIMIT + 1)
    )
    db.session.commit()
    rows = messages.watch_log_fresh(tenant, LogFilters(), utcnow() - timedelta(minutes=5))
    assert (len(rows.items), rows.overflow) == (FRESH_LIMIT, True)
