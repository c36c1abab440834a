"""The inbox page: the chat list and its filters, keyset pages and the live refresh, the header badge, the team
panel's actions (assign, take, resolve, reopen, notes) with their permissions, the quick-reply picker and the
quick replies' administration page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Chat, ChatNote, Contact, QuickReply, utcnow
from portal.services import quick_replies
from tests.builders import TEST_ACTOR, make_tenant, make_user, member, new_session, stored_chat
from tests.helpers import csrf_token, post, text

HTMX = {"HX-Request": "true"}


@pytest.fixture
def session(tenant: Any) -> Any:
    return new_session(tenant, "Support")


def make_chat(
    session: Any, number: str = "491709999999", *, assignee: Any = None, unread: int = 0, **fields: Any
) -> Chat:
    """A chat row as event processing leaves it, assigned to the user `assignee`."""
    return stored_chat(
        session, number, assignee_id=assignee.id if assignee is not None else None, unread_count=unread, **fields
    )


def names_in(body: str) -> list[str]:
    return re.findall(r'<span class="chat-name">([^<]*)</span>', body)


# ---- the page and the list -------------------------------------------------------------------------------------


def test_inbox_lists_chats_newest_first_with_their_details(owner_client, session, owner):
    make_chat(session, "491700000001", minutes_ago=30, name="Older Olga", preview="see you")
    make_chat(session, "491700000002", minutes_ago=1, name="Newer Nils", unread=3, assignee=owner, preview="any news?")
    make_chat(session, "491700000003", minutes_ago=5, from_me=True, last_status="READ", preview="done")
    response = owner_client.get("/inbox/")
    assert response.status_code == 200
    body = text(response)
    assert names_in(body) == ["Newer Nils", "+49 170 0000003", "Older Olga"]
    assert 'class="session-badge" title="Session">Support<' in body
    assert "3 unread" in body and "any news?" in body
    assert "owner@acme.example.com" in body  # the assignee
    assert 'class="ticks ticks-READ"' in body  # my last message, read
    assert 'class="avatar avatar-c' in body and ">NN<" in body  # initials in a coloured circle
    assert "Choose a conversation" in body
    assert 'data-chat-open="false"' in body


def test_contact_names_follow_the_display_rule(owner_client, tenant, session):
    make_chat(session, "491700000004", name="Push Paula")
    db.session.add(Contact(tenant_id=tenant.id, chat_id="491700000004@c.us", saved_name="Saved Sam", push_name="x"))
    db.session.commit()
    assert names_in(text(owner_client.get("/inbox/"))) == ["Saved Sam"]


def test_stored_avatar_is_shown_over_the_initials(owner_client, tenant, session):
    make_chat(session, "491700000005", name="Pic Person")
    contact = Contact(
        tenant_id=tenant.id, chat_id="491700000005@c.us", avatar_state="stored", avatar_key="1/avatars/x.jpg"
    )
    db.session.add(contact)
    db.session.commit()
    body = text(owner_client.get("/inbox/"))
    assert f'<img src="/inbox/avatars/{contact.id}" alt=""' in body and ">PP<" in body


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        ("all", ["Unread Ulla", "Mine Mia", "Free Fred"]),
        ("unread", ["Unread Ulla"]),
        ("mine", ["Mine Mia"]),
        ("unassigned", ["Unread Ulla", "Free Fred"]),
        ("resolved", ["Done Dora"]),
    ],
)
def test_tabs_filter_the_list(owner_client, session, owner, view, expected):
    make_chat(session, "491700000011", minutes_ago=4, name="Free Fred")
    make_chat(session, "491700000012", minutes_ago=3, name="Mine Mia", assignee=owner)
    make_chat(session, "491700000013", minutes_ago=2, name="Unread Ulla", unread=1)
    make_chat(session, "491700000014", minutes_ago=1, name="Done Dora", status="resolved")
    body = text(owner_client.get(f"/inbox/?view={view}"))
    assert names_in(body) == expected
    assert re.search(rf'<a href="[^"]*" aria-current="page">{view.capitalize()}</a>', body)


def test_session_select_and_search_filter_the_list(owner_client, tenant, session):
    other = new_session(tenant, "Sales")
    make_chat(session, "491700000021", name="Anna Support")
    make_chat(other, "491700000022", name="Bert Sales")
    assert names_in(text(owner_client.get(f"/inbox/?session={other.id}"))) == ["Bert Sales"]
    assert names_in(text(owner_client.get("/inbox/?q=anna"))) == ["Anna Support"]
    assert names_in(text(owner_client.get("/inbox/?q=%2B49 170 0000022"))) == ["Bert Sales"]
    assert "No chat matches" in text(owner_client.get("/inbox/?q=nobody"))


def test_another_tenants_session_filter_is_not_found(owner_client):
    stranger = new_session(make_tenant(), "Theirs")
    assert owner_client.get(f"/inbox/?session={stranger.id}").status_code == 404


def test_list_is_keyset_paged_with_load_more(owner_client, session):
    for n in range(35):
        make_chat(session, f"4917000001{n:02d}", minutes_ago=n, name=f"Person {n:02d}")
    body = text(owner_client.get("/inbox/"))
    assert names_in(body) == [f"Person {n:02d}" for n in range(30)]
    more = re.search(r'hx-get="(/inbox/list\?cursor=[^"]+)"', body).group(1).replace("&amp;", "&")
    rest = text(owner_client.get(more, headers=HTMX))
    assert names_in(rest) == [f"Person {n:02d}" for n in range(30, 35)]
    assert "Load more" not in rest


def test_live_refresh_answers_204_until_something_changes(owner_client, session):
    chat = make_chat(session, "491700000031", minutes_ago=5, name="Quiet Quinn")
    make_chat(session, "491700000032", minutes_ago=1, name="Loud Lara")
    body = text(owner_client.get("/inbox/"))
    poll = re.search(r'hx-get="(/inbox/list\?version=[^"]+)"', body).group(1).replace("&amp;", "&")
    assert owner_client.get(poll, headers=HTMX).status_code == 204

    chat.last_activity_at, chat.updated_at = utcnow(), utcnow()  # a new message in Quinn's chat
    db.session.commit()
    response = owner_client.get(poll, headers=HTMX)
    assert response.status_code == 200
    assert names_in(text(response)) == ["Quiet Quinn", "Loud Lara"]


def test_live_refresh_keeps_the_rows_loaded_since(owner_client, session):
    for n in range(40):
        make_chat(session, f"4917000002{n:02d}", minutes_ago=n, name=f"Row {n:02d}")
    assert len(names_in(text(owner_client.get("/inbox/list?shown=40", headers=HTMX)))) == 40


def test_open_chat_is_marked_and_its_panel_shown(owner_client, session):
    chat = make_chat(session, "491700000041", name="Open Olli")
    body = text(owner_client.get(f"/inbox/?chat={chat.id}"))
    assert 'data-chat-open="true"' in body
    assert re.search(rf'id="chat-{chat.id}".*?aria-current="true"', body, re.S)
    assert 'id="team-panel"' in body and "never sent to WhatsApp" in body


# ---- the header badge --------------------------------------------------------------------------------------


def test_badge_counts_unread_chats_for_me_or_nobody(owner_client, session, owner, tenant):
    colleague = member(tenant, "operator")
    make_chat(session, "491700000051", unread=2)  # nobody's: counts
    make_chat(session, "491700000052", unread=1, assignee=owner)  # mine: counts
    make_chat(session, "491700000053", unread=4, assignee=colleague)  # a colleague's: not mine
    make_chat(session, "491700000054", unread=0)  # read
    make_chat(session, "491700000055", unread=1, status="resolved")  # done
    badge = text(owner_client.get("/inbox/badge", headers=HTMX))
    assert '<span aria-hidden="true">2</span>' in badge and "2 unread chats" in badge
    page = text(owner_client.get("/sessions/"))
    assert re.search(r'<a href="/inbox/"[^>]*>Inbox\s*<span id="inbox-badge"', page)
    assert 'hx-trigger="every 5s"' in page


def test_badge_is_empty_without_unread_chats(owner_client, session):
    make_chat(session, "491700000056", unread=0)
    assert re.search(r'<span id="inbox-badge"[^>]*></span>', text(owner_client.get("/inbox/badge")))


def test_every_member_has_the_inbox_in_the_menu(viewer_client):
    assert 'href="/inbox/"' in text(viewer_client.get("/"))


# ---- the team panel ------------------------------------------------------------------------------------------


def _chat_page(chat: Chat) -> str:
    return f"/inbox/?chat={chat.id}"


def test_assign_answers_the_panel_for_htmx_and_is_audited(owner_client, session, tenant):
    colleague = member(tenant, "operator")
    chat = make_chat(session, "491700000061")
    token = csrf_token(owner_client, _chat_page(chat))
    response = owner_client.post(
        f"/inbox/chats/{chat.id}/assign", data={"assignee": str(colleague.id), "csrf_token": token}, headers=HTMX
    )
    assert response.status_code == 200
    assert f"Assigned to <strong>{colleague.email}</strong>" in text(response)
    assert db.session.get(Chat, chat.id).assignee_id == colleague.id
    assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.action == "chat.assign"))


def test_take_assigns_to_me_and_a_plain_post_redirects(owner_client, session, owner):
    chat = make_chat(session, "491700000062")
    response = post(owner_client, f"/inbox/chats/{chat.id}/assign", {"assignee": str(owner.id), "take": "1"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/inbox/?chat={chat.id}")
    assert db.session.get(Chat, chat.id).assignee_id == owner.id
    assert names_in(text(owner_client.get("/inbox/?view=mine"))) == ["+49 170 0000062"]
    assert ">Take</button>" not in text(owner_client.get(_chat_page(chat)))  # already mine


def test_assigning_to_a_stranger_is_refused_in_the_panel(owner_client, session):
    outsider = make_user(make_tenant(), "owner", email="out@example.com")
    chat = make_chat(session, "491700000063")
    response = post(owner_client, f"/inbox/chats/{chat.id}/assign", {"assignee": str(outsider.id)}, headers=HTMX)
    assert response.status_code == 200 and "only to members of this tenant" in text(response)
    assert db.session.get(Chat, chat.id).assignee_id is None


def test_resolve_and_reopen(owner_client, session):
    chat = make_chat(session, "491700000064")
    response = post(owner_client, f"/inbox/chats/{chat.id}/status", {"status": "resolved"}, headers=HTMX)
    assert ">Reopen</button>" in text(response)
    assert db.session.get(Chat, chat.id).status == "resolved"
    response = post(owner_client, f"/inbox/chats/{chat.id}/status", {"status": "open"}, headers=HTMX)
    assert ">Resolve</button>" in text(response)
    db.session.expire_all()
    assert db.session.get(Chat, chat.id).status == "open"


def test_notes_are_added_and_listed(owner_client, session, owner):
    chat = make_chat(session, "491700000065")
    response = post(owner_client, f"/inbox/chats/{chat.id}/notes", {"body": "Called them back"}, headers=HTMX)
    assert response.status_code == 200
    assert "Called them back" in text(response) and owner.email in text(response)
    note = db.session.scalar(select(ChatNote))
    assert note.chat_id == chat.id and note.author_id == owner.id
    empty = post(owner_client, f"/inbox/chats/{chat.id}/notes", {"body": "  "}, headers=HTMX)
    assert "Write the note." in text(empty)


def test_operator_may_assign(login, tenant, session):
    operator = member(tenant, "operator")
    client = login(operator)
    chat = make_chat(session, "491700000066")
    assert ">Take</button>" in text(client.get(_chat_page(chat)))
    post(client, f"/inbox/chats/{chat.id}/assign", {"assignee": str(operator.id), "take": "1"})
    assert db.session.get(Chat, chat.id).assignee_id == operator.id


def test_viewer_sees_the_panel_without_actions_and_cannot_act(viewer_client, session):
    chat = make_chat(session, "491700000067")
    body = text(viewer_client.get(_chat_page(chat)))
    assert 'id="team-panel"' in body and "Internal notes" in body
    for button in (">Assign</button>", ">Take</button>", ">Resolve</button>", ">Add note</button>"):
        assert button not in body
    token = csrf_token(viewer_client, _chat_page(chat))
    for path, data in (("assign", {"assignee": ""}), ("status", {"status": "resolved"}), ("notes", {"body": "x"})):
        response = viewer_client.post(f"/inbox/chats/{chat.id}/{path}", data={**data, "csrf_token": token})
        assert response.status_code == 403, path
    db.session.expire_all()
    assert db.session.get(Chat, chat.id).status == "open"


@pytest.mark.parametrize("path", ["assign", "status", "notes"])
def test_team_actions_need_the_csrf_token(owner_client, session, path):
    chat = make_chat(session, "491700000068")
    response = owner_client.post(f"/inbox/chats/{chat.id}/{path}", data={"status": "resolved", "body": "x"})
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Chat, chat.id).status == "open" and db.session.scalar(select(ChatNote)) is None


def test_another_tenants_chat_is_not_found(owner_client, tenant):
    theirs = make_chat(new_session(make_tenant(), "Theirs"), "491700000069")
    token = csrf_token(owner_client, "/inbox/")
    assert owner_client.get(f"/inbox/?chat={theirs.id}").status_code == 404
    assert owner_client.get(f"/inbox/quick-replies?chat={theirs.id}").status_code == 404
    for path, data in (("assign", {"assignee": ""}), ("status", {"status": "resolved"}), ("notes", {"body": "x"})):
        response = owner_client.post(f"/inbox/chats/{theirs.id}/{path}", data={**data, "csrf_token": token})
        assert response.status_code == 404, path
    db.session.expire_all()
    assert db.session.get(Chat, theirs.id).status == "open"


# ---- quick replies ---------------------------------------------------------------------------------------------


def test_picker_lists_replies_by_prefix_with_the_chat_filled_in(owner_client, tenant, session):
    quick_replies.create_reply(tenant, TEST_ACTOR, shortcut="hello", text="Hi {{name}}, we got {{phone}}.")
    quick_replies.create_reply(tenant, TEST_ACTOR, shortcut="hours", text="We open at 9.")
    quick_replies.create_reply(tenant, TEST_ACTOR, shortcut="bye", text="Bye!")
    chat = make_chat(session, "491700000071", name="Carla")
    body = text(owner_client.get(f"/inbox/quick-replies?q=/h&chat={chat.id}"))
    assert re.findall(r'data-shortcut="([^"]+)"', body) == ["hello", "hours"]
    assert 'data-text="Hi Carla, we got +49 170 0000071."' in body
    assert "No quick reply" in text(owner_client.get("/inbox/quick-replies?q=zzz"))


def test_admin_adds_edits_and_deletes_a_quick_reply(owner_client, tenant):
    page = "/admin/quick-replies/"
    assert 'href="/admin/quick-replies/"' in text(owner_client.get(page))  # in the admin menu
    response = post(owner_client, page, {"shortcut": "thanks", "text": "Thank you, {{name}}!"}, page=page)
    assert response.status_code == 303
    reply = db.session.scalar(select(QuickReply))
    assert (reply.shortcut, reply.text) == ("thanks", "Thank you, {{name}}!")
    assert "/thanks" in text(owner_client.get(page))

    edit = f"/admin/quick-replies/{reply.id}/edit"
    assert 'value="thanks"' in text(owner_client.get(edit))
    assert post(owner_client, edit, {"shortcut": "ty", "text": "Thanks!"}, page=edit).status_code == 303
    db.session.expire_all()
    assert (reply.shortcut, reply.text) == ("ty", "Thanks!")

    delete = f"/admin/quick-replies/{reply.id}/delete"
    assert "Delete the quick reply /ty?" in text(owner_client.get(delete))
    assert post(owner_client, delete, page=delete).status_code == 303
    assert db.session.scalar(select(QuickReply)) is None
    actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("quick_reply.%"))))
    assert actions == {"quick_reply.create", "quick_reply.update", "quick_reply.delete"}


def test_quick_reply_form_shows_the_services_refusals(owner_client, tenant):
    quick_replies.create_reply(tenant, TEST_ACTOR, shortcut="taken", text="x")
    page = "/admin/quick-replies/"
    response = post(owner_client, page, {"shortcut": "taken", "text": "y"}, page=page)
    assert response.status_code == 409 and "This shortcut is taken." in text(response)
    response = post(owner_client, page, {"shortcut": "Not ok!", "text": "y"}, page=page)
    assert response.status_code == 400 and "lower-case letters" in text(response)


def test_another_tenants_quick_reply_is_not_found(owner_client):
    theirs = quick_replies.create_reply(make_tenant(), TEST_ACTOR, shortcut="secret", text="x")
    assert owner_client.get(f"/admin/quick-replies/{theirs.id}/edit").status_code == 404
    assert owner_client.get(f"/admin/quick-replies/{theirs.id}/delete").status_code == 404


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_only_admins_manage_quick_replies(login, tenant, role):
    client = login(member(tenant, role))
    assert client.get("/admin/quick-replies/").status_code == 403
    assert 'href="/admin/quick-replies/"' not in text(client.get("/"))
