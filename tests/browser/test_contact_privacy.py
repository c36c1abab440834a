"""A person's data in a browser: from the contacts list to the contact's data page, the ZIP downloaded, then the
erase after typing the number; through the live portal, a real worker and wahasim (which is asked to delete the
chat)."""

from __future__ import annotations

import json
import re
import zipfile

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Chat, Contact, Message
from tests.builders import working_session
from tests.helpers import wait_for

pytestmark = pytest.mark.browser

CUSTOMER = "491709999999"
CHAT = f"{CUSTOMER}@c.us"


def _count(model, *conditions) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0


def test_export_then_erase_a_contact_from_its_page(page, sign_in, shoot, worker, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    sim.inbound(session.external_name, from_=CUSTOMER, text="please send me my data")
    wait_for(
        lambda: _count(Contact, Contact.chat_id == CHAT) == 1 and _count(Message, Message.chat_id == CHAT) == 1,
        timeout=10,
    )
    sign_in(owner)

    page.goto("/contacts/")
    page.get_by_role("link", name=re.compile(r"^Data of ")).click()
    expect(page.get_by_test_id("message-count")).to_have_text("1")
    shoot("data-page")

    with page.expect_download() as caught:
        page.get_by_role("button", name="Download the data (ZIP)").click()
    archive = zipfile.ZipFile(caught.value.path())
    assert [m["body"] for m in json.loads(archive.read("messages.json"))] == ["please send me my data"]

    page.get_by_label("Type the number to confirm").fill("+49 170 1111111")
    page.get_by_role("button", name="Erase all data of this person").click()
    expect(page.get_by_text("Type the number exactly as shown")).to_be_visible()
    assert _count(Message, Message.chat_id == CHAT) == 1

    page.get_by_label("Type the number to confirm").fill("+49 170 9999999")
    page.get_by_role("button", name="Erase all data of this person").click()
    expect(page.get_by_text("was erased. Messages: 1 ·")).to_be_visible()
    page.goto("/admin/privacy/")
    expect(page.get_by_role("heading", name="Export all data")).to_be_visible()
    shoot("admin-privacy")
    assert _count(Message, Message.chat_id == CHAT) == 0
    assert _count(Chat, Chat.chat_id == CHAT) == 0 and _count(Contact, Contact.chat_id == CHAT) == 0
    assert [d["chatId"] for d in sim.deleted_chats(session.external_name)] == [CHAT]
