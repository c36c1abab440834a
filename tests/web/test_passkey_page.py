"""The session page while WhatsApp asks for a passkey: the challenge to sign, the box for the browser's answer,
the code to compare."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.builders import passkey_assertion, passkey_session, wait_for_status
from tests.helpers import csrf_token


def _challenge(page: str) -> dict[str, Any]:
    script = re.search(r"const o = (\{.*?\});", page.replace("&#34;", '"').replace("&quot;", '"'), re.S)
    assert script, "the page shows the challenge in its script"
    return json.loads(script.group(1))


def test_the_page_takes_the_assertion_and_the_session_links(owner_client, tenant, sim):
    session = passkey_session(tenant, sim)
    page = owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    assertion = json.dumps(passkey_assertion(_challenge(page)))

    response = owner_client.post(
        f"/sessions/{session.id}/passkey",
        data={"assertion": assertion, "csrf_token": csrf_token(owner_client, f"/sessions/{session.id}")},
    )

    assert "Link with a passkey" in page and "web.whatsapp.com" in page
    assert response.status_code == 303
    assert wait_for_status(tenant, session, "WORKING").status == "WORKING"


def test_pasted_text_that_is_no_assertion_is_shown_back_with_the_reason(owner_client, tenant, sim):
    session = passkey_session(tenant, sim)
    token = csrf_token(owner_client, f"/sessions/{session.id}")

    response = owner_client.post(
        f"/sessions/{session.id}/passkey", data={"assertion": "{not json", "csrf_token": token}
    )

    assert response.status_code == 400
    assert "Paste the JSON the browser gave on web.whatsapp.com." in response.get_data(as_text=True)
    assert sim.session(session.external_name)["status"] == "PASSKEY_REQUIRED"


def test_the_confirmation_step_shows_the_code_and_confirms(owner_client, tenant, sim):
    session = passkey_session(tenant, sim, confirm=True)
    page = owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    owner_client.post(
        f"/sessions/{session.id}/passkey",
        data={
            "assertion": json.dumps(passkey_assertion(_challenge(page))),
            "csrf_token": csrf_token(owner_client, f"/sessions/{session.id}"),
        },
    )
    wait_for_status(tenant, session, "PASSKEY_CONFIRMATION_REQUIRED")

    confirm_page = owner_client.get(f"/sessions/{session.id}").get_data(as_text=True)
    code = re.search(r'id="passkey-code">(\d+)<', confirm_page)
    owner_client.post(
        f"/sessions/{session.id}/passkey/confirm",
        data={"csrf_token": csrf_token(owner_client, f"/sessions/{session.id}")},
    )

    [announced] = [e for e in sim.events() if e["payload"].get("status") == "PASSKEY_CONFIRMATION_REQUIRED"]
    assert code is not None and code.group(1) == announced["payload"]["data"]["code"]
    assert wait_for_status(tenant, session, "WORKING").status == "WORKING"


def test_passkey_posts_need_the_forms_csrf_token(owner_client, tenant, sim):
    session = passkey_session(tenant, sim)

    assert owner_client.post(f"/sessions/{session.id}/passkey", data={"assertion": "{}"}).status_code == 400
    assert owner_client.post(f"/sessions/{session.id}/passkey/confirm").status_code == 400
    assert sim.session(session.external_name)["status"] == "PASSKEY_REQUIRED"
