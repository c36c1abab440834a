"""The inbox in a real browser: the split pane at desktop width and one pane at a time on a phone (light and
dark screenshots), a new WhatsApp message moving its chat to the top of the list without a reload (the
simulator's webhook through the live portal and a real worker), and assignment with the "Mine" tab."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from tests.builders import member, stored_chat, working_session

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def seed_chat(session: Any, number: str, name: str | None, minutes_ago: int, preview: str, **fields: Any) -> Any:
    return stored_chat(session, number, name=name, minutes_ago=minutes_ago, preview=preview, **fields)


def shoot_light_and_dark(page: Any, shoot: Any, name: str) -> None:
    shoot(f"{name}-light")
    page.emulate_media(color_scheme="dark")
    shoot(f"{name}-dark")
    page.emulate_media(color_scheme="light")


def rows(page: Any) -> Any:
    return page.locator("#chat-list .chat-row")


def test_inbox_at_desktop_and_phone_width(page, sign_in, shoot, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    colleague = member(tenant, "operator", email="sam@acme.example.com")
    seed_chat(session, "491701110001", "Maria Gonzalez", 2, "Can I change my delivery address?", unread_count=2)
    seed_chat(session, "491701110002", "Tom", 14, "Thanks, that worked!", from_me=True, last_status="READ")
    seed_chat(session, "491701110003", None, 60 * 5, "Invoice", kind="document", assignee_id=colleague.id)
    seed_chat(session, "491701110004", "Lena Fischer", 60 * 30, "See you tomorrow", status="resolved")
    page.set_viewport_size(DESKTOP)
    sign_in(owner)
    page.goto("/inbox/")

    expect(rows(page)).to_have_count(3)  # "All" holds the open chats
    expect(rows(page).first).to_contain_text("Maria Gonzalez")
    expect(page.locator("#thread-pane")).to_contain_text("Choose a conversation")
    list_box, pane = page.locator("#chat-list").bounding_box(), page.locator("#thread-pane").bounding_box()
    assert list_box["x"] + list_box["width"] <= pane["x"] + 1  # side by side
    shoot_light_and_dark(page, shoot, "desktop")

    rows(page).first.locator("a").click()
    expect(page.locator("#team-panel")).to_be_visible()
    expect(page.locator("#chat-list")).to_be_visible()
    shoot_light_and_dark(page, shoot, "desktop-chat-open")

    page.set_viewport_size(PHONE)
    page.goto("/inbox/")
    expect(page.locator("#chat-list")).to_be_visible()
    expect(page.locator("#thread-pane")).to_be_hidden()
    shoot_light_and_dark(page, shoot, "phone-list")
    rows(page).first.locator("a").click()
    expect(page.locator("#thread-pane")).to_be_visible()
    expect(page.locator("#chat-list")).to_be_hidden()
    shoot_light_and_dark(page, shoot, "phone-chat-open")
    page.get_by_role("link", name="Back to the chats").click()
    expect(page.locator("#chat-list")).to_be_visible()


def test_broken_avatar_falls_back_to_initials(page, sign_in, tenant, owner, sim):
    from portal.models import Contact

    session = working_session(tenant, sim, "Support line")
    seed_chat(session, "491701110009", "Paula Pic", 1, "hi")
    db.session.add(  # a stored picture whose file is gone: the image answers 404
        Contact(tenant_id=tenant.id, chat_id="491701110009@c.us", avatar_state="stored", avatar_key="gone/x.jpg")
    )
    db.session.commit()
    sign_in(owner)
    page.goto("/inbox/")
    avatar = rows(page).first.locator(".avatar")
    expect(avatar).to_contain_text("PP")
    expect(avatar.locator("img")).to_have_count(0)


def test_new_message_moves_its_chat_to_the_top_without_a_reload(page, sign_in, shoot, worker, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    erik = seed_chat(session, "491702220001", "Earlier Erik", 30, "old news")
    seed_chat(session, "491702220002", "Recent Rita", 1, "just now")
    sign_in(owner)
    page.goto("/inbox/")
    expect(rows(page).first).to_contain_text("Recent Rita")
    page.evaluate("document.documentElement.dataset.sameDocument = 'yes'")

    sim.inbound(session.external_name, from_="491702220001", text="Is my order on its way?")

    expect(rows(page).first).to_have_id(f"chat-{erik.id}", timeout=10000)
    expect(rows(page).first).to_contain_text("Is my order on its way?")
    expect(rows(page).first.locator(".unread-count")).to_contain_text("1")
    expect(page.locator("#inbox-badge")).to_contain_text("1", timeout=10000)
    assert page.evaluate("document.documentElement.dataset.sameDocument") == "yes"
    shoot("live-top")


def test_take_a_chat_and_find_it_under_mine(page, sign_in, shoot, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    seed_chat(session, "491703330001", "Nora Needs-Help", 3, "Hello?", unread_count=1)
    seed_chat(session, "491703330002", "Otto Other", 5, "Later")
    sign_in(owner)
    page.goto("/inbox/?view=mine")
    expect(page.locator("#chat-list")).to_contain_text("No open chats are assigned to you.")

    page.get_by_role("link", name="All").click()
    rows(page).filter(has_text="Nora Needs-Help").locator("a").click()
    panel = page.locator("#team-panel")
    panel.get_by_role("button", name="Take").click()
    expect(panel).to_contain_text("Assigned to owner@acme.example.com")
    expect(panel.get_by_role("button", name="Take")).to_have_count(0)
    panel.get_by_text("Internal notes").click()  # the notes fold open
    panel.get_by_role("textbox", name="Internal note").fill("Promised a call back at 3")
    panel.get_by_role("button", name="Add note").click()
    expect(panel.locator(".note")).to_contain_text("Promised a call back at 3")
    shoot("taken")

    page.get_by_role("link", name="Mine").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Nora Needs-Help")
    expect(rows(page).first).to_contain_text("owner@acme.example.com")

    rows(page).first.locator("a").click()
    panel = page.locator("#team-panel")
    panel.get_by_role("button", name="Resolve").click()
    expect(panel.get_by_role("button", name="Reopen")).to_be_visible()
    page.get_by_role("link", name="Resolved").click()
    expect(rows(page).first).to_contain_text("Nora Needs-Help")
