"""Contact avatars: a picture downloaded once into portal storage (from a loopback server standing in for
WhatsApp's CDN), served only to its tenant, and the selection of contacts whose picture is due."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from werkzeug.wrappers import Response

from portal.extensions import db
from portal.models import Chat, Contact, utcnow
from portal.services import avatars
from portal.services.errors import NotFound
from portal.storage import storage
from tests.builders import make_tenant, make_token, new_session
from tests.helpers import Api, LoopbackServer

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63646060f80f"
    "0002870180eb47ba920000000049454e44ae426082"
)


@pytest.fixture
def cdn() -> Any:
    """Answers /pic.png with a PNG, /page with HTML."""

    def answer(request: Any) -> Response:
        if request.path == "/pic.png":
            return Response(PNG, mimetype="image/png")
        return Response("<html></html>", mimetype="text/html")

    with LoopbackServer(answer) as server:
        yield f"http://127.0.0.1:{server.port}"


def contact_of(tenant: Any, chat_id: str = "491709999999@c.us") -> Contact:
    contact = Contact(tenant_id=tenant.id, chat_id=chat_id, phone=chat_id.split("@")[0], tags=[])
    db.session.add(contact)
    db.session.commit()
    return contact


def test_picture_is_stored_once_and_served_to_its_tenant(tenant, cdn, media_backend):
    contact = contact_of(tenant)

    outcome = avatars.store_avatar(contact, f"{cdn}/pic.png")

    handle, mimetype = avatars.open_avatar(tenant, contact.id)
    with handle:
        assert (outcome, handle.read(), mimetype) == ("stored", PNG, "image/png")
    # the key names the tenant but nothing guessable: no contact id, no chat id
    assert re.fullmatch(rf"t/{tenant.id}/a/[0-9a-f]{{32}}\.png", contact.avatar_key)
    assert contact.avatar_fetched_at is not None


def test_a_refreshed_picture_replaces_the_stored_one(tenant, cdn, media_backend):
    contact = contact_of(tenant)
    avatars.store_avatar(contact, f"{cdn}/pic.png")
    first = contact.avatar_key

    assert avatars.store_avatar(contact, f"{cdn}/pic.png") == "stored"

    assert contact.avatar_key != first and storage().exists(contact.avatar_key) and not storage().exists(first)


def test_other_tenants_picture_is_not_found(tenant, cdn, media_backend):
    contact = contact_of(tenant)
    avatars.store_avatar(contact, f"{cdn}/pic.png")

    with pytest.raises(NotFound) as caught:
        avatars.open_avatar(make_tenant(), contact.id)

    assert caught.value.code == "avatar_not_found"


@pytest.mark.parametrize(("path", "state"), [(None, "none"), ("/page", "failed"), ("/missing", "failed")])
def test_no_picture_or_a_bad_answer_leaves_initials(tenant, cdn, path, state):
    contact = contact_of(tenant)

    outcome = avatars.store_avatar(contact, f"{cdn}{path}" if path else None)

    assert outcome == contact.avatar_state == state and avatars.avatar_url(contact) is None


def test_due_names_contacts_never_tried_or_stale_with_a_working_session(tenant, sim):
    from tests.builders import wait_for_status

    session = new_session(tenant, "Support")
    sim.scan(session.external_name)
    wait_for_status(tenant, session, "WORKING")
    fresh, never, stale, lonely = (contact_of(tenant, f"49170111111{n}@c.us") for n in range(4))
    fresh.avatar_state, fresh.avatar_fetched_at = "stored", utcnow()
    stale.avatar_state, stale.avatar_fetched_at = "none", utcnow() - avatars.AVATAR_REFRESH - timedelta(hours=1)
    for contact in (fresh, never, stale):  # `lonely` has no chat in any session
        db.session.add(Chat(tenant_id=tenant.id, session_id=session.id, chat_id=contact.chat_id))
    db.session.commit()

    due = avatars.due()

    assert sorted(due) == sorted([(never.id, session.id), (stale.id, session.id)])


def test_fetch_for_a_session_that_is_not_working_is_skipped(tenant):
    session = new_session(tenant, "Support")
    contact = contact_of(tenant)

    assert avatars.fetch_avatar(contact.id, session.id) == "skipped" and contact.avatar_state is None


def test_api_shows_the_stored_picture(client, tenant, cdn, media_backend):
    api = Api(client, make_token(tenant))
    contact = contact_of(tenant)
    avatars.store_avatar(contact, f"{cdn}/pic.png")
    other = Api(client, make_token(make_tenant()))

    [listed] = api.get("/waha/contacts").get_json()["data"]
    served = api.get(listed["avatarUrl"])

    assert listed["avatarUrl"] == f"/waha/contacts/{contact.id}/avatar"
    assert served.status_code == 200 and served.get_data() == PNG and served.mimetype == "image/png"
    assert other.get(listed["avatarUrl"]).status_code == 404


def test_scheduled_job_fetches_the_profile_picture_whatsapp_has(tenant, sim, media_backend):
    from portal.jobs.inbox import fetch_avatars
    from tests.builders import wait_for_status

    session = new_session(tenant, "Support")
    sim.scan(session.external_name)
    wait_for_status(tenant, session, "WORKING")
    with_picture, without = contact_of(tenant, "491701111110@c.us"), contact_of(tenant, "491701111111@c.us")
    sim.set_contact(session.external_name, with_picture.chat_id, picture=True)
    sim.set_contact(session.external_name, without.chat_id, picture=False)
    for contact in (with_picture, without):
        db.session.add(Chat(tenant_id=tenant.id, session_id=session.id, chat_id=contact.chat_id))
    db.session.commit()

    ids = with_picture.id, without.id

    counts = fetch_avatars()  # the job ends its database session: read the rows again

    stored, none = (db.session.get(Contact, contact_id) for contact_id in ids)
    assert counts == {"stored": 1, "none": 1}
    assert (stored.avatar_state, none.avatar_state) == ("stored", "none")
    handle, mimetype = avatars.open_avatar(db.session.merge(tenant), stored.id)
    with handle:
        assert handle.read() and mimetype.startswith("image/")
    assert avatars.due() == []
