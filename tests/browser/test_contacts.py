"""The contacts page in a browser: readable at desktop and phone width, tags saved from the row, and a sync from
WhatsApp that fills in names through the live portal, a real worker and wahasim."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Contact, utcnow
from tests.builders import working_session

pytestmark = pytest.mark.browser


def test_contacts_at_desktop_and_phone_width_with_tags_and_sync(page, sign_in, shoot, worker, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    now = utcnow()
    for n, name in enumerate(["Anna Schmidt", None, "Carlos Ortega"]):
        db.session.add(
            Contact(
                tenant_id=tenant.id, chat_id=f"49170000000{n}@c.us", phone=f"49170000000{n}", push_name=name,
                tags=["vip"] if n == 0 else [], first_message_at=now, last_message_at=now,
            )
        )  # fmt: skip
    db.session.commit()
    sim.set_contact(session.external_name, "491700000001", saved_name="Bea from the phone")
    sign_in(owner)
    page.goto("/contacts/")
    expect(page.locator(".contact-name", has_text="+49 170 0000001")).to_be_visible()  # no name yet: the number

    tags = page.get_by_label("Tags of Carlos Ortega, separated by commas")
    tags.fill("supplier, Supplier , berlin")
    page.get_by_role("button", name="Save the tags of Carlos Ortega").click()
    expect(page.get_by_text("Tags of Carlos Ortega saved.")).to_be_visible()
    expect(page.get_by_label("Tags of Carlos Ortega, separated by commas")).to_have_value("supplier, berlin")

    page.get_by_role("button", name="Sync from WhatsApp: Support line").click()
    expect(page.get_by_text("Reading the contacts of “Support line” from WhatsApp")).to_be_visible()
    bea = page.locator(".contact-name", has_text="Bea from the phone")
    for _ in range(20):  # the worker imports the names meanwhile; the page shows them on the next load
        page.reload()
        if bea.count():
            break
        page.wait_for_timeout(500)
    expect(bea).to_be_visible()
    shoot("desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    assert not page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")
    shoot("phone")
