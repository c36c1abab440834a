"""Two-factor sign-in services: TOTP enrolment and codes, recovery codes, throttling, remembered browsers, reset."""

from __future__ import annotations

import time

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, RecoveryCode
from portal.services import accounts, two_factor
from portal.services.errors import Invalid, RateLimited, Unauthorized
from portal.services.two_factor import passkeys, recovery, remembered, totp
from portal.services.two_factor.passkeys import RelyingParty
from tests.builders import PASSWORD, TEST_ACTOR, give_second_factor, make_user


def _actions(user_id: int) -> list[str]:
    stmt = select(AuditEvent.action).where(AuditEvent.target_id == str(user_id)).order_by(AuditEvent.id)
    return list(db.session.scalars(stmt))


def _code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + steps_ahead * totp.INTERVAL)


def test_totp_is_off_until_a_code_confirms_it_and_the_secret_is_encrypted_at_rest(owner):
    secret = totp.start_enrolment(owner)
    assert not two_factor.has_factor(owner)
    with pytest.raises(Invalid):
        totp.confirm(owner, "000000" if _code(secret) != "000000" else "111111", TEST_ACTOR)
    assert owner.totp_enabled_at is None

    codes = totp.confirm(owner, _code(secret), TEST_ACTOR)

    assert two_factor.has_factor(owner) and len(codes) == 10 and len(set(codes)) == 10
    stored = db.session.execute(sa.text("SELECT totp_secret FROM users WHERE id = :id"), {"id": owner.id}).scalar()
    assert stored and secret not in stored
    hashes = set(db.session.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == owner.id)))
    assert len(hashes) == 10 and not any(code in hashes for code in codes)
    assert "user.totp_enabled" in _actions(owner.id)


def test_a_totp_code_is_good_once(owner):
    secret = give_second_factor(owner)
    code = _code(secret)
    assert two_factor.verify_code(owner, code, TEST_ACTOR) == "totp"
    with pytest.raises(Invalid):
        two_factor.verify_code(owner, code, TEST_ACTOR)
    assert _actions(owner.id)[-1] == "auth.second_factor_failed"


def test_an_earlier_code_is_refused_after_a_later_one(owner):
    secret = give_second_factor(owner)
    assert two_factor.verify_code(owner, _code(secret, 1), TEST_ACTOR) == "totp"
    with pytest.raises(Invalid):
        two_factor.verify_code(owner, _code(secret), TEST_ACTOR)


def test_a_recovery_code_works_once_and_is_audited(owner):
    give_second_factor(owner)
    codes = recovery.regenerate(owner, TEST_ACTOR)
    assert two_factor.verify_code(owner, codes[3].upper(), TEST_ACTOR) == "recovery"
    assert recovery.remaining(owner) == 9
    with pytest.raises(Invalid):
        two_factor.verify_code(owner, codes[3], TEST_ACTOR)
    assert "auth.recovery_code_used" in _actions(owner.id)
    assert "user.recovery_codes_regenerated" in _actions(owner.id)


def test_regenerated_recovery_codes_replace_the_old_ones(owner):
    give_second_factor(owner)
    old = recovery.regenerate(owner, TEST_ACTOR)
    recovery.regenerate(owner, TEST_ACTOR)
    with pytest.raises(Invalid):
        two_factor.verify_code(owner, old[0], TEST_ACTOR)


def test_wrong_codes_are_throttled_like_passwords(owner):
    secret = give_second_factor(owner)
    for _ in range(5):
        with pytest.raises(Invalid):
            two_factor.verify_code(owner, "not-a-code", TEST_ACTOR)
    with pytest.raises(RateLimited):
        two_factor.verify_code(owner, _code(secret), TEST_ACTOR)  # even the right code waits
    assert "auth.second_factor_throttled" in _actions(owner.id)


def test_reset_removes_every_factor_and_remembered_browser(owner, tenant, app):
    give_second_factor(owner)
    with app.test_request_context():
        cookie = remembered.remember(owner)
        db.session.commit()
        assert remembered.is_remembered(owner, cookie)

        two_factor.reset(owner, TEST_ACTOR, tenant_id=tenant.id)

        assert not two_factor.has_factor(owner) and recovery.remaining(owner) == 0
        assert not remembered.is_remembered(owner, cookie)
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.two_factor_reset")).one()
    assert event.tenant_id == tenant.id and event.details["totp"] is True and event.details["remembered_browsers"] == 1


def test_a_password_change_forgets_remembered_browsers(owner, app):
    give_second_factor(owner)
    with app.test_request_context():
        cookie = remembered.remember(owner)
        db.session.commit()
        accounts.change_password(owner, PASSWORD, "a brand new long passphrase 42", TEST_ACTOR)
        assert not remembered.is_remembered(owner, cookie)


def test_a_remembered_cookie_of_another_user_or_forged_counts_for_nothing(owner, tenant, app):
    other = make_user(tenant, "viewer", email="other@acme.example.com")
    with app.test_request_context():
        cookie = remembered.remember(owner)
        db.session.commit()
        assert not remembered.is_remembered(other, cookie)
        assert not remembered.is_remembered(owner, cookie[:-2] + "xx")


def test_turning_off_the_last_factor_is_refused_while_the_team_requires_one(owner, tenant):
    give_second_factor(owner)
    tenant.require_two_factor = True
    db.session.commit()
    with pytest.raises(Exception) as refused:
        two_factor.refuse_if_last_required(owner, removing="totp")
    assert getattr(refused.value, "code", "") == "two_factor_required"


def test_a_passkey_challenge_is_good_once(owner, app):
    rp = RelyingParty(id="localhost", origin="http://localhost")
    _, ticket = passkeys.authentication_options(rp)
    with pytest.raises(Exception):
        passkeys.authenticate({"id": "nope"}, ticket, rp, TEST_ACTOR)
    with pytest.raises(Invalid) as again:
        passkeys.authenticate({"id": "nope"}, ticket, rp, TEST_ACTOR)
    assert again.value.code == "passkey_challenge"


# -- Passkeys, with a software authenticator ---------------------------------------------------------------------

RP = RelyingParty(id="localhost", origin="http://localhost:5000")


def _registered(user):
    from tests.soft_authenticator import SoftAuthenticator

    key = SoftAuthenticator(RP.id, RP.origin)
    options, ticket = passkeys.registration_options(user, RP)
    passkeys.register(user, key.create(options), "Laptop", ticket, RP, TEST_ACTOR)
    return key


def test_a_registered_passkey_signs_in_without_a_password_and_as_the_second_step(owner):
    key = _registered(owner)
    assert two_factor.has_factor(owner) and "user.passkey_added" in _actions(owner.id)

    options, ticket = passkeys.authentication_options(RP)
    assert passkeys.authenticate(key.get(options), ticket, RP, TEST_ACTOR) == owner
    options, ticket = passkeys.authentication_options(RP, owner)
    assert passkeys.authenticate(key.get(options), ticket, RP, TEST_ACTOR, user=owner) == owner


def test_a_passkey_whose_counter_does_not_rise_is_refused(owner):
    key = _registered(owner)
    options, ticket = passkeys.authentication_options(RP)
    passkeys.authenticate(key.get(options, count=5), ticket, RP, TEST_ACTOR)
    options, ticket = passkeys.authentication_options(RP)
    with pytest.raises(Unauthorized):
        passkeys.authenticate(key.get(options, count=5), ticket, RP, TEST_ACTOR)  # a clone replays the count
    assert _actions(owner.id)[-1] == "auth.second_factor_failed"


def test_signing_in_without_a_password_needs_the_person_verified(owner):
    key = _registered(owner)
    options, ticket = passkeys.authentication_options(RP)
    with pytest.raises(Unauthorized):
        passkeys.authenticate(key.get(options, verified=False), ticket, RP, TEST_ACTOR)


def test_a_passkey_answer_from_another_origin_is_refused(owner):
    key = _registered(owner)
    options, ticket = passkeys.authentication_options(RP)
    with pytest.raises(Unauthorized):
        passkeys.authenticate(key.get(options, origin="https://evil.example"), ticket, RP, TEST_ACTOR)


def test_another_users_passkey_does_not_pass_the_second_step(owner, tenant):
    key = _registered(owner)
    other = make_user(tenant, "viewer", email="other@acme.example.com")
    options, ticket = passkeys.authentication_options(RP, other)
    with pytest.raises(Unauthorized):
        passkeys.authenticate(key.get(options), ticket, RP, TEST_ACTOR, user=other)
