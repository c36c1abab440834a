"""Session controls in Chromium: confirming a delete on the session's page lands on the list."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.builders import working_session

pytestmark = pytest.mark.browser


def test_delete_confirmed_in_the_dialog_lands_on_the_list(page, sign_in, tenant, owner, sim):
    session = working_session(tenant, sim, "Old line")
    sign_in(owner)
    page.goto(f"/sessions/{session.id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="Delete").click()
    page.wait_for_url(re.compile(r"/sessions/$"))
    expect(page.get_by_text("Session deleted.")).to_be_visible()
    expect(page.get_by_role("link", name="Old line")).to_have_count(0)
