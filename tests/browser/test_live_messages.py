"""New inbound messages show up by themselves on the newest page of the message log (WAHA's webhook goes through
the live portal and a real worker); the open conversation is the inbox's thread (test_inbox_thread.py)."""

from __future__ import annotations

import base64

import pytest
from playwright.sync_api import expect

from portal.storage import new_key, storage
from tests.builders import stored_message, working_session

pytestmark = pytest.mark.browser


def test_inbound_message_appears_on_the_newest_page_of_the_log(page, sign_in, shoot, worker, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    stored_message(tenant, session, body="Everything read already", status="READ")
    sign_in(owner)
    page.goto("/messages/")
    page.evaluate("document.documentElement.dataset.sameDocument = 'yes'")

    sim.inbound(session.external_name, from_="491709999999", text="Is anyone there?")

    row = page.locator("tr", has_text="Is anyone there?")
    expect(row).to_be_visible(timeout=10000)
    assert page.evaluate("document.documentElement.dataset.sameDocument") == "yes"
    # newest first: the new row sits above the one that was there
    rows = page.locator("table.messages tbody tr")
    expect(rows.first).to_contain_text("Is anyone there?")
    shoot("log-live")


@pytest.mark.parametrize("presigned", [False, True], ids=["streamed", "presigned"])
def test_received_image_opens_in_the_browsers_image_viewer(
    page, sign_in, app, tenant, owner, sim, media_backend, presigned
):
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
    )
    session = working_session(tenant, sim, "Support line")
    app.config["MEDIA_PRESIGNED_URLS"] = presigned  # media_backend puts the setting back
    key = new_key(tenant.id, "m", ".png")
    storage().save(key, png, "image/png")
    message = stored_message(
        tenant,
        session,
        direction="in",
        status="DEVICE",
        body=None,
        media={"kind": "image", "mimetype": "image/png", "filename": "photo.png", "status": "stored", "key": key},
    )
    sign_in(owner)
    answer = page.goto(f"/messages/{message.id}/media")
    # with presigned URLs on a bucket the browser follows the portal's redirect to the bucket
    redirected = answer is not None and answer.request.redirected_from is not None
    assert redirected == (presigned and media_backend == "s3")
    expect(page.locator("img")).to_have_count(1)
    page.wait_for_function("document.images[0].complete")
    assert page.evaluate("document.images[0].naturalWidth") == 1
