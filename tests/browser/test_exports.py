"""The message log's "Export CSV" link follows the filters as htmx swaps the log, and downloads what the log
shows."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect

from tests.builders import new_session, stored_message

pytestmark = pytest.mark.browser


def test_export_link_follows_the_filters_and_downloads_the_filtered_log(page, sign_in, tenant, owner):
    session = new_session(tenant, "Support line")
    sent = stored_message(tenant, session, direction="out", body="=sent by us")
    stored_message(tenant, session, direction="in", body="received from them")
    sign_in(owner)
    page.goto("/messages/")
    page.get_by_label("Direction").select_option("out")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.messages tbody tr")).to_have_count(1)
    link = page.locator("#log-export")
    expect(link).to_have_attribute("href", "/messages/export?direction=out")
    with page.expect_download() as waiting:
        link.click()
    download = waiting.value
    assert download.suggested_filename.startswith("messages-acme-") and download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8") as handle:
        rows = list(csv.reader(io.StringIO(handle.read())))
    assert [(int(r[0]), r[6]) for r in rows[1:]] == [(sent.id, "'=sent by us")]
