"""A file over the limit is refused in the browser before it is uploaded; the typed text stays."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.builders import working_session

pytestmark = pytest.mark.browser


def test_file_over_the_limit_is_refused_before_upload(page, sign_in, app, tenant, owner, sim):
    session = working_session(tenant, sim, "Support line")
    saved = app.config["MEDIA_MAX_BYTES"]
    app.config["MEDIA_MAX_BYTES"] = 1024 * 1024
    try:
        sign_in(owner)
        page.goto("/messages/send")
        page.get_by_label("To").fill("+49 170 9999999")
        page.get_by_label("Message").fill("the figures you asked for")
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        page.get_by_label("Attach a file").set_input_files(
            {"name": "big.pdf", "mimeType": "application/pdf", "buffer": b"\0" * (2 * 1024 * 1024)}
        )
        expect(page.get_by_text("That file is too large to send")).to_be_visible()

        page.get_by_role("button", name="Send").click()
        page.wait_for_timeout(500)

        assert posts == []
        expect(page.get_by_label("Message")).to_have_value("the figures you asked for")
        assert sim.sent_messages(session.external_name) == []
    finally:
        app.config["MEDIA_MAX_BYTES"] = saved
