"""Fixtures of the receiver tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _waha_webhooks_elsewhere(request: pytest.FixtureRequest) -> Iterator[None]:
    """See tests/jobs/conftest.py: the simulator's own events go to a closed port in these tests."""
    from tests.helpers import quiet_waha_webhooks

    if "app" not in request.fixturenames:
        yield
        return
    with quiet_waha_webhooks(request.getfixturevalue("app")):
        yield
