"""The password policy: at least 12 characters, not a common or easily guessed password, wherever one is set."""

from __future__ import annotations

import pytest

from portal.cli import DEMO_PASSWORD
from portal.services import accounts, team
from portal.services.errors import Invalid
from portal.services.passwords import MIN_PASSWORD, check_password_policy
from tests.builders import PASSWORD, TEST_ACTOR, mailed_link

REFUSED = {
    "short": "eleven-char",  # 11 characters
    "common": "password1234",
    "common, other case": "QWERTYUIOP123",
    "keyboard walk": "1qaz2wsx3edc4rfv",
    "repeat": "abcabcabcabcabc",
    "own address": "owner.acme.example",
}


@pytest.mark.parametrize("password", REFUSED.values(), ids=REFUSED.keys())
def test_policy_refuses_weak_passwords(password):
    with pytest.raises(Invalid) as refused:
        check_password_policy(password, email="owner@acme.example")
    assert refused.value.details["fields"][0]["field"] == "password"


@pytest.mark.parametrize("password", [DEMO_PASSWORD, PASSWORD, "violet-tram-sunday-harbour"])
def test_policy_accepts_strong_passwords(password):
    check_password_policy(password, email="owner@acme.example")


def test_minimum_is_twelve_characters():
    assert MIN_PASSWORD == 12


def test_reset_applies_the_policy(owner):
    with pytest.raises(Invalid):
        accounts.reset_password(accounts.make_reset_token(owner), "password1234", TEST_ACTOR)
    assert owner.check_password(PASSWORD)


def test_invitation_sign_up_applies_the_policy(tenant):
    team.invite_member(
        tenant, "new@example.com", "viewer", TEST_ACTOR, actor_role="owner", accept_url=lambda token: f"/invite/{token}"
    )
    token = mailed_link("new@example.com").rsplit("/", 1)[1]
    with pytest.raises(Invalid):
        team.accept_invitation(token, TEST_ACTOR, password="iloveyou1234")
    user = team.accept_invitation(token, TEST_ACTOR, password="violet-tram-sunday-harbour")
    assert user.email_verified_at is not None  # the link only ever went to that mailbox
