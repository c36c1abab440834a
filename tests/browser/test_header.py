"""The header on a 390 px phone for someone in several tenants, and a tenant switcher that only switches when
asked (WCAG 3.2.2: changing a select must not change the context)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.services import tenants as tenants_service
from tests.builders import TEST_ACTOR, make_tenant, make_user

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}

# Elements of the header cut off by the viewport, not counting those inside a box that scrolls on its own (the
# sections' line on a phone scrolls sideways; the header itself must not).
HEADER_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = el => { for (let p = el.parentElement; p && !p.matches('header.topbar'); p = p.parentElement) {
    if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX)) return true; } return false; };
  return [...document.querySelectorAll('header.topbar *')]
    .filter(el => { const b = el.getBoundingClientRect(); return b.width > 0 && (b.right > width + 1 || b.left < -1); })
    .filter(el => !scrolls(el))
    .map(el => el.tagName + '.' + el.className + ' right=' + Math.round(el.getBoundingClientRect().right));
}"""


@pytest.fixture
def busy_user(tenant):
    user = make_user(tenant, "owner", email="a.very.long.address.for.testing@customer-support.example.com")
    for name in ("Northwind Trading International", "Contoso Pharmaceuticals Europe"):
        tenants_service.set_membership(make_tenant(name=name), user, "admin", TEST_ACTOR)
    return user


def test_header_fits_a_phone_for_a_user_of_several_tenants(page, sign_in, shoot, busy_user):
    page.set_viewport_size(PHONE)
    sign_in(busy_user)
    assert page.evaluate(HEADER_OVERFLOW) == []
    assert not page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")
    expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport()
    # the sections take one line that scrolls sideways, not a line each
    assert page.evaluate("document.querySelector('nav.mainnav').getBoundingClientRect().height") < 48
    shoot("header-phone")


def test_choosing_a_tenant_switches_only_on_the_button(page, sign_in, busy_user):
    page.set_viewport_size(PHONE)
    sign_in(busy_user)
    switcher = page.get_by_label("Tenant")
    switcher.focus()
    page.keyboard.press("ArrowDown")  # moving through the options with the keyboard changes nothing yet
    page.wait_for_timeout(500)
    expect(page.get_by_text("Now working in")).to_have_count(0)
    switcher.select_option(label="Contoso Pharmaceuticals Europe")
    page.wait_for_timeout(500)
    expect(page.get_by_text("Now working in")).to_have_count(0)

    page.get_by_role("button", name="Switch").click()

    expect(page.get_by_text("Now working in Contoso Pharmaceuticals Europe.")).to_be_visible()
