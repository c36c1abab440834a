"""Failed API authentications are throttled per client address before any credential is checked, and a burst
of failures is one audit row with a count, not a row each."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent
from portal.services import auth_throttle
from tests.helpers import Api

LIMIT = 3
GUESSER = "198.51.100.23"


@pytest.fixture(autouse=True)
def low_limit(app: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "API_AUTH_FAILURE_LIMIT", LIMIT)


@pytest.fixture(autouse=True)
def one_window(monkeypatch: Any) -> None:
    """Every call of a test falls in one throttle window: the throttle sees a clock standing one second into the
    current window (on a slow machine a test's calls could otherwise straddle a window boundary and count twice)."""
    real = auth_throttle.current_window
    start = time.time() // auth_throttle.WINDOW_SECONDS * auth_throttle.WINDOW_SECONDS + 1
    monkeypatch.setattr(auth_throttle, "current_window", lambda now=None: real(start if now is None else now))


def _call(client: Any, credential: str, address: str = GUESSER) -> Any:
    return client.get(
        "/waha/sessions", headers={"Authorization": f"Bearer {credential}"}, environ_base={"REMOTE_ADDR": address}
    )


def _failure_rows() -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.api_failed")))


def test_address_with_too_many_failures_gets_429_with_retry_after(client: Any, token: str) -> None:
    statuses = [_call(client, f"wp_000000000000_guess-{n}").status_code for n in range(LIMIT)]
    assert statuses == [401] * LIMIT
    refused = _call(client, "wp_000000000000_guess-next")
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_throttled_address_is_refused_before_its_credential_is_checked(client: Any, token: str) -> None:
    for n in range(LIMIT):
        _call(client, f"wp_000000000000_guess-{n}")
    # Even the right token: answering 200 here would tell a guesser which guess was right.
    assert _call(client, token).status_code == 429
    assert len(_failure_rows()) == 1  # refusals before authentication add no rows


def test_other_addresses_are_not_throttled(client: Any, token: str) -> None:
    for n in range(LIMIT + 1):
        _call(client, f"wp_000000000000_guess-{n}")
    assert _call(client, token, address="203.0.113.50").status_code == 200


def test_repeated_failures_are_one_audit_row_with_a_count(client: Any, api: Api) -> None:
    for credential in ("garbage", "wp_000000000000_guess", "garbage"):
        _call(client, credential)
    [row] = _failure_rows()
    assert row.ip == GUESSER
    assert row.details["count"] == 3
    assert row.details["reasons"] == {"credential_unrecognised": 2, "token_unknown": 1}
    assert row.details["window_seconds"] == 60


def test_failures_from_two_addresses_are_two_rows(ctx: Any, client: Any) -> None:
    _call(client, "garbage")
    _call(client, "garbage", address="203.0.113.50")
    assert sorted(r.ip for r in _failure_rows()) == sorted(["203.0.113.50", GUESSER])
