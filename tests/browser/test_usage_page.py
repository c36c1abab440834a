"""The usage page in a browser: reached from the administration menu, each limit with what is used, the day's
bar in the chart; a phone-width page that does not scroll sideways."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.services import quotas
from tests.builders import make_user

pytestmark = pytest.mark.browser


def test_usage_page_shows_limits_and_the_days_bar(page, sign_in, shoot, tenant):
    owner = make_user(tenant, "owner", email="owner@acme.example.com")
    tenant.max_messages_per_day = 10
    db.session.commit()
    for _ in range(8):
        quotas.take_message(tenant, "s1")
    sign_in(owner)
    page.goto("/admin/team/")
    page.get_by_role("link", name="Plan usage").click()
    page.wait_for_url("**/usage/")
    expect(page.get_by_role("heading", name="Plan usage")).to_be_visible()
    row = page.locator("tr[data-quota='messages_per_day']")
    expect(row).to_contain_text("Messages sent per day")
    expect(row).to_contain_text("8")
    expect(row).to_contain_text("10")
    expect(row.locator("meter")).to_have_attribute("value", "80")
    bars = page.locator("figure.usage-chart svg rect")
    assert bars.count() >= 1
    tallest = max(float(bars.nth(i).get_attribute("height") or 0) for i in range(bars.count()))
    assert tallest > 0
    page.set_viewport_size({"width": 390, "height": 844})
    assert not page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")
    shoot("usage")
