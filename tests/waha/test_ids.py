"""Chat ids, message ids from the three engine response shapes, and pre-generated message ids."""

from __future__ import annotations

import re

import pytest

from portal.waha.ids import new_message_id, normalize_message_id, to_chat_id, to_phone_digits


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("+49 170 1234567", "491701234567@c.us"),
        ("0049 (170) 123-4567", "491701234567@c.us"),
        ("491701234567", "491701234567@c.us"),
        ("491701234567@c.us", "491701234567@c.us"),
        ("120363041234567890@g.us", "120363041234567890@g.us"),
        ("118234567890123@lid", "118234567890123@lid"),
        ("120363012345678901@newsletter", "120363012345678901@newsletter"),
        ("491701234567@s.whatsapp.net", "491701234567@c.us"),
        ("491701234567:12@s.whatsapp.net", "491701234567@c.us"),
    ],
)
def test_to_chat_id_returns_waha_chat_id(given, expected):
    assert to_chat_id(given) == expected


@pytest.mark.parametrize("given", ["", "   ", "call me", "0170 1234567", "+49 170 1234567 8901234"])
def test_to_chat_id_rejects_numbers_that_cannot_be_a_whatsapp_id(given):
    with pytest.raises(ValueError):
        to_chat_id(given)


def test_to_phone_digits_strips_plus_and_spaces():
    assert to_phone_digits("+49 170 1234567") == "491701234567"


@pytest.mark.parametrize(
    "fixture", ["send-text.response.gows.json", "send-text.response.noweb.json", "send-text.response.webjs.json"]
)
def test_normalize_message_id_gives_one_id_style_for_every_engine(load_fixture, fixture):
    # All three fixtures describe the same message sent to 4915112345678.
    assert normalize_message_id(load_fixture(fixture)) == "true_4915112345678@c.us_3EB0AABBCCDDEEFF0011"


@pytest.mark.parametrize("response", [{}, {"id": None}, {"key": {"id": "X"}}, None, ["x"]])
def test_normalize_message_id_returns_none_without_an_id(response):
    assert normalize_message_id(response) is None


def test_new_message_id_looks_like_a_whatsapp_id():
    assert re.fullmatch(r"3EB0[0-9A-F]{16}", new_message_id())


def test_new_message_id_differs_each_time():
    assert len({new_message_id() for _ in range(1000)}) == 1000
