"""Browser tests: a real RQ worker beside the live portal, a signed-in page, screenshots kept as artifacts, live
fragments that poll every second.

The worker is the production command (`flask --app wsgi worker`) in a subprocess with the test app's own
settings, so webhooks the simulator posts to the live portal are processed as they would be in production.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from portal.config import SETTING_NAMES, SETTINGS
from tests.builders import PASSWORD, recovery_code
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-results" / "screenshots"


def _as_env(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def worker_environment(app: Flask) -> dict[str, str]:
    """The process environment that rebuilds this app's configuration in another process."""
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    for setting in SETTINGS:
        value = app.config.get(setting.name)
        if value is not None:
            env[setting.name] = _as_env(value)
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture(scope="package")
def worker(app: Flask, live_server: Any) -> Iterator[subprocess.Popen]:
    """`flask --app wsgi worker` while the browser tests run, and only then: left running, it would take
    the jobs other test packages run with their own burst worker (started after the live server, so
    PUBLIC_BASE_URL is the live portal's)."""
    log_path = ROOT / "test-results" / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    flask = str(Path(sys.executable).with_name("flask"))
    name = f"browser-tests-{os.getpid()}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [flask, "--app", "wsgi", "worker", "--name", name],
            cwd=ROOT,
            env=worker_environment(app),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    connection = redis.Redis.from_url(app.config["REDIS_URL"])

    def registered() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with {process.returncode}; see {log_path}")
        return bool(connection.exists(f"rq:worker:{name}"))

    try:
        wait_for(registered, timeout=10, interval=0.05)
    except AssertionError:
        process.terminate()
        raise RuntimeError(f"the worker did not register within 10 s; see {log_path}") from None
    yield process
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


QUICK_POLL_SECONDS = 1


@pytest.fixture(autouse=True)
def _quick_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live fragments poll every second instead of every 3 s (5 s once a session settled), so a test that waits
    for a page to follow a change waits about a second per step. The polling itself is what the tests exercise;
    its period is asserted by the page tests (tests/web)."""
    from portal.web import messages, sessions, webhooks
    from wahasim import control

    for module, name in (
        (sessions, "POLL_SECONDS"),
        (sessions, "SETTLED_POLL_SECONDS"),
        (messages, "POLL_SECONDS"),
        (webhooks, "DELIVERY_POLL_SECONDS"),
        (control, "REFRESH_SECONDS"),  # the simulator's control page
    ):
        monkeypatch.setattr(module, name, QUICK_POLL_SECONDS)


@pytest.fixture(autouse=True)
def _no_content_security_policy_violations(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every browser test fails when the page broke its own Content-Security-Policy (an inline style or script
    that the policy refuses: something on the page did not work as written)."""
    if "page" not in request.fixturenames:
        yield
        return
    page = request.getfixturevalue("page")
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    yield
    assert not violations, violations


@pytest.fixture
def shoot(page: Any, request: pytest.FixtureRequest) -> Any:
    """shoot("name") keeps a full-page screenshot under test-results/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def sign_in(page: Any) -> Any:
    """Sign a user in through the login page, as a person would."""

    def do(user: Any) -> Any:
        page.goto("/login")
        page.get_by_label("Email").fill(user.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_load_state()
        if page.url.endswith("/login/two-factor"):  # platform admins have a second factor (tests/builders.py)
            page.get_by_label("Code").fill(recovery_code(user))
            page.get_by_role("button", name="Verify").click()
        page.wait_for_url("**/")
        return page

    return do
