"""Two-factor sign-in in Chromium: an authenticator app (codes computed from the secret the page shows), passkeys
on Chromium's virtual authenticator (as the second step and without a password), and a team that requires it.

WebAuthn needs a secure context and a domain as relying party id: the passkey tests use http://localhost."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pyotp
import pytest
from playwright.sync_api import expect

from portal.extensions import db
from tests.builders import PASSWORD, make_user, member

pytestmark = pytest.mark.browser

AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
}


def _password(page, base, user):
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()


def _sign_out(page):
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def _set_up_app(page, base, shoot=None):
    page.goto(f"{base}/account/two-factor")
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.get_by_role("img", name="QR code of your two-factor secret")).to_be_visible()
    if shoot:
        shoot("totp-setup")
    secret = page.locator("#totp-secret").inner_text().strip()
    page.get_by_label("Code from your app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.get_by_role("link", name="I have saved them").click()
    return secret


def test_authenticator_app_enrolment_and_sign_in(page, base_url, shoot, tenant, owner):
    _password(page, base_url, owner)
    secret = _set_up_app(page, base_url, shoot)
    expect(page.get_by_text("Codes from your app sign you in.")).to_be_visible()
    _sign_out(page)

    _password(page, base_url, owner)
    expect(page.get_by_role("heading", name="Two-factor sign-in")).to_be_visible()
    shoot("second-step")
    page.get_by_label("Code").fill(pyotp.TOTP(secret).at(time.time() + 30))  # the next code: the last is spent
    page.get_by_role("button", name="Verify").click()

    page.wait_for_url(f"{base_url}/")
    expect(page.get_by_role("link", name=owner.email, exact=False)).to_be_visible()


@pytest.fixture
def localhost(live_server):
    return f"http://localhost:{urlsplit(live_server.url).port}"


@pytest.fixture
def authenticator(page, context):
    client = context.new_cdp_session(page)
    client.send("WebAuthn.enable")
    added = client.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return client, added["authenticatorId"]


def test_passkey_enrolment_second_step_and_passwordless_sign_in(page, localhost, authenticator, shoot, tenant, owner):
    _password(page, localhost, owner)
    page.goto(f"{localhost}/account/two-factor")
    page.get_by_label("Name of the new passkey").fill("Laptop")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Passkey added: Laptop.")).to_be_visible()
    expect(page.locator(".passkeys li")).to_have_count(1)
    shoot("passkey-added")
    _sign_out(page)

    # After the password, the passkey is the second step.
    _password(page, localhost, owner)
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(f"{localhost}/")
    _sign_out(page)

    # Without a password: the discoverable passkey names its owner.
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(f"{localhost}/")
    expect(page.get_by_role("link", name=owner.email, exact=False)).to_be_visible()
    client, authenticator_id = authenticator
    credentials = client.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    assert len(credentials) == 1 and credentials[0]["isResidentCredential"]
    assert credentials[0]["signCount"] >= 2  # the server checked the counter went up on each use


def test_a_team_that_requires_two_factor_leads_members_to_enrolment(page, base_url, shoot, tenant):
    tenant.require_two_factor = True
    db.session.commit()
    user = member(tenant, "operator", email="op@acme.example.com")
    _password(page, base_url, user)
    page.wait_for_url(f"{base_url}/account/two-factor")
    expect(page.get_by_text("Your team requires two-factor sign-in.")).to_be_visible()
    shoot("enrolment-required")

    page.goto(f"{base_url}/sessions/")
    page.wait_for_url(f"{base_url}/account/two-factor")

    _set_up_app(page, base_url)
    page.goto(f"{base_url}/sessions/")
    expect(page).to_have_url(f"{base_url}/sessions/")


def test_a_platform_admin_without_a_factor_is_led_to_enrolment_first(page, base_url, tenant):
    from portal.services import two_factor
    from tests.builders import TEST_ACTOR

    root = make_user(tenant, "owner", email="root@example.com", is_platform_admin=True)
    two_factor.reset(root, TEST_ACTOR, tenant_id=None)
    _password(page, base_url, root)
    page.goto(f"{base_url}/platform/tenants")
    page.wait_for_url(f"{base_url}/account/two-factor")
    _set_up_app(page, base_url)
    page.goto(f"{base_url}/platform/tenants")
    expect(page).to_have_url(f"{base_url}/platform/tenants")
