"""Pages people found hard to read: measured in Chromium at desktop width and on a 390x844 phone."""

from __future__ import annotations

import pytest

from portal.extensions import db
from portal.models import WahaServer
from portal.services import audit
from portal.services.audit import Actor
from tests.builders import make_user, working_session

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# The script measures what a person sees: elements sticking out of the viewport, not counting those inside a
# box that scrolls on its own (wide code samples may scroll there, the page itself must not).
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll('main *')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) continue;
    let parent = el.parentElement, clipped = false;
    while (parent && parent !== document.body) {
      if (getComputedStyle(parent).overflowX !== 'visible') { clipped = true; break; }
      parent = parent.parentElement;
    }
    if (!clipped) out.push(el.tagName + '.' + el.className + ' right=' + Math.round(box.right));
  }
  return out;
}"""


def _page_scrolls_sideways(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")


def _audit_events(tenant) -> None:
    actor = Actor(
        type="user", id="1", label="demo@example.com", ip="127.0.0.1", request_id="7b46fd103f5545a1b493a872e4365a1f"
    )
    audit.record(
        tenant.id,
        "session.create",
        actor,
        target_type="session",
        target_id="12e800c2-bf4d-43a4-9f21-41ca6df1eb99",
        details={
            "name": "Support line",
            "external_name": "t1_support-line_9ff9dfdefault",
            "server": "default",
            "engine": "GOWS",
        },
    )
    audit.record(
        tenant.id,
        "token.create",
        actor,
        target_type="token",
        target_id="2",
        details={
            "name": "browser-qa",
            "scopes": ["messages:read", "messages:send", "sessions:read", "sessions:write"],
            "prefix": "9bd9a6dce1f5",
            "expires_at": "2027-02-27T06:11:35.354877+00:00",
        },
    )
    db.session.commit()


def test_audit_details_column_is_readable_on_desktop(page, sign_in, shoot, tenant, owner):
    _audit_events(tenant)
    page.set_viewport_size(DESKTOP)
    sign_in(owner)
    page.goto("/admin/audit/")
    widths = page.eval_on_selector_all("table.audit dl.details dd", "els => els.map(e => e.clientWidth)")
    assert widths and min(widths) >= 120, widths
    wrap = page.eval_on_selector("#audit-results .table-wrap", "e => [e.scrollWidth, e.clientWidth]")
    assert wrap[0] <= wrap[1] + 1, f"the table needs sideways scrolling at desktop width: {wrap}"
    shoot("audit-desktop")


def test_audit_log_fits_a_phone_with_details_under_each_event(page, sign_in, shoot, tenant, owner):
    _audit_events(tenant)
    page.set_viewport_size(PHONE)
    sign_in(owner)
    page.goto("/admin/audit/")
    assert not _page_scrolls_sideways(page)
    assert page.evaluate(OVERFLOWING) == []
    wrap = page.eval_on_selector("#audit-results .table-wrap", "e => [e.scrollWidth, e.clientWidth]")
    assert wrap[0] <= wrap[1] + 1, f"the events need sideways scrolling on a phone: {wrap}"
    widths = page.eval_on_selector_all("table.audit dl.details dd", "els => els.map(e => e.clientWidth)")
    assert min(widths) >= 120, widths
    shoot("audit-phone")


def test_send_page_fits_a_phone(page, sign_in, shoot, tenant, owner, sim):
    working_session(tenant, sim, "Support line")
    page.set_viewport_size(PHONE)
    sign_in(owner)
    page.goto("/messages/send")
    page.get_by_role("group", name="Attachment (optional)").wait_for()
    assert not _page_scrolls_sideways(page)
    assert page.evaluate(OVERFLOWING) == []
    shoot("send-phone")


def test_api_docs_fit_a_phone_with_tables_scrolling_in_place(page, shoot):
    page.set_viewport_size(PHONE)
    page.goto("/waha/docs")
    assert not _page_scrolls_sideways(page)
    assert page.evaluate(OVERFLOWING) == []
    # a wide parameter table scrolls inside its own box, which the keyboard can reach
    boxes = page.eval_on_selector_all(".api-table-wrap", "els => els.map(e => e.tabIndex)")
    assert boxes and set(boxes) == {0}
    shoot("api-docs-phone")


# The gap between a card's padding edge and its first heading, in CSS pixels.
HEADING_GAP = """sel => [...document.querySelectorAll(sel)].map(card => {
  const heading = card.querySelector(':scope > h1, :scope > h2, :scope > h3');
  const style = getComputedStyle(card);
  return Math.round(heading.getBoundingClientRect().top - card.getBoundingClientRect().top
                    - parseFloat(style.paddingTop) - parseFloat(style.borderTopWidth));
})"""


def test_cards_start_with_their_heading(page, sign_in, tenant, owner):
    sign_in(owner)
    page.goto("/admin/settings/")
    assert page.evaluate(HEADING_GAP, "main form.card") == [0]
    page.goto("/admin/team/")
    assert page.evaluate(HEADING_GAP, "main section.card.form-card") == [0]
    page.goto("/account")
    assert set(page.evaluate(HEADING_GAP, "main section.card.form-card")) == {0}  # language and password

    root = make_user(tenant, "viewer", email="root@example.com", is_platform_admin=True)
    server = db.session.scalar(db.select(WahaServer))
    page.context.clear_cookies()
    sign_in(root)
    page.goto(f"/platform/servers/{server.id}")
    assert set(page.evaluate(HEADING_GAP, "main .grid > .card")) == {0}


def test_session_page_cards_keep_one_even_gap_once_linked(page, sign_in, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    sign_in(owner)
    page.goto(f"/sessions/{session.id}")
    gap = page.evaluate("""() => Math.round(document.querySelector('#screenshot-h').closest('.card')
        .getBoundingClientRect().top - document.querySelector('#session-live').getBoundingClientRect().bottom)""")
    assert gap == 16
