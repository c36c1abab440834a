"""Fixtures for the operations tests: a second WAHA simulator, apps whose dependencies are down (built in a
process of their own), the JSON log."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from portal import telemetry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def request_in_app(_environ: dict[str, str], sim: Any) -> Callable[..., tuple[int, str]]:
    """GET a path from an app built with some variables changed, in a separate Python process.

    Extensions such as the Redis holder and the rate limiter are process-wide, so an app whose Redis or
    database is unreachable is built where it cannot break the test app.
    """

    def get(path: str, **overrides: str) -> tuple[int, str]:
        env = dict(_environ, WAHA_BASE_URL=sim.url, **overrides)
        completed = subprocess.run(
            [sys.executable, "-c", _REQUEST_SCRIPT, path],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORTAL_TEST_ENV": json.dumps(env)},
        )
        assert completed.returncode == 0, completed.stderr
        answer = json.loads(completed.stdout.strip().splitlines()[-1])
        return answer["status"], answer["body"]

    return get


_REQUEST_SCRIPT = """
import json, os, sys
from portal import create_app
app = create_app(json.loads(os.environ["PORTAL_TEST_ENV"]))
response = app.test_client().get(sys.argv[1])
print(json.dumps({"status": response.status_code, "body": response.get_data(as_text=True)}))
"""


@pytest.fixture
def json_log(app: Any) -> Iterator[io.StringIO]:
    """The portal's JSON log handler, writing into a buffer for the length of a test."""
    buffer = io.StringIO()
    real_stderr = sys.stderr
    sys.stderr = buffer
    try:
        telemetry.configure_logging("INFO", "json")
    finally:
        sys.stderr = real_stderr
    yield buffer
    telemetry.configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
