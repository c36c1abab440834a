"""The inbox page's lookups: a chat by its row id (the page's URLs) and quick replies by shortcut prefix (the
composer's picker)."""

from __future__ import annotations

from typing import Any

import pytest

from portal.extensions import db
from portal.models import Chat, Contact
from portal.services import inbox, quick_replies
from portal.services.errors import NotFound
from tests.builders import TEST_ACTOR, make_tenant, new_session


def _chat(session: Any, number: str = "491709999999") -> Chat:
    chat = Chat(tenant_id=session.tenant_id, session_id=session.id, chat_id=f"{number}@c.us", name="Pushed")
    db.session.add(chat)
    db.session.commit()
    return chat


def test_chat_by_row_id_comes_with_its_display_name(tenant):
    chat = _chat(new_session(tenant, "Support"))
    db.session.add(Contact(tenant_id=tenant.id, chat_id=chat.chat_id, saved_name="Saved"))
    db.session.commit()
    item = inbox.get_chat_by_id(tenant, chat.id)
    assert item.chat.id == chat.id and item.name == "Saved" and item.contact is not None


@pytest.mark.parametrize("wanted", ["theirs", "not-a-number", "99999999999999999999", None])
def test_chat_by_row_id_of_another_tenant_or_no_id_is_not_found(tenant, wanted):
    theirs = _chat(new_session(make_tenant(), "Theirs"))
    with pytest.raises(NotFound) as caught:
        inbox.get_chat_by_id(tenant, theirs.id if wanted == "theirs" else wanted)
    assert caught.value.code == "chat_not_found"


def test_replies_found_by_shortcut_prefix(tenant):
    for shortcut in ("hours", "hello", "h_x", "hax", "bye"):
        quick_replies.create_reply(tenant, TEST_ACTOR, shortcut=shortcut, text=shortcut)
    quick_replies.create_reply(make_tenant(), TEST_ACTOR, shortcut="hidden", text="another tenant's")

    def found(prefix: Any, **kwargs: Any) -> list[str]:
        return [r.shortcut for r in quick_replies.find_replies(tenant, prefix, **kwargs)]

    assert found("/H") == ["h_x", "hax", "hello", "hours"]
    assert found("h_") == ["h_x"]  # "_" is a character here, not a wildcard
    assert found("he") == ["hello"]
    assert found("") == found(None) == ["bye", "h_x", "hax", "hello", "hours"]
    assert found("h", limit=2) == ["h_x", "hax"]
