"""Structured logs: JSON lines with request id, tenant and session; secrets masked before they are written."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from portal import telemetry


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


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_access_log_line_is_json_with_request_id_and_tenant(json_log: io.StringIO, owner: Any, login: Any) -> None:
    client = login(owner)

    response = client.get("/", headers={"X-Request-ID": "req-12345678"})

    access = [line for line in lines(json_log) if line["logger"] == "portal.access"]
    assert response.status_code == 200
    assert access[-1]["request_id"] == "req-12345678" == response.headers["X-Request-ID"]
    assert access[-1]["tenant"] == "acme"
    assert access[-1]["level"] == "INFO"
    assert access[-1]["message"].startswith("GET / 200")


def test_access_log_leaves_out_query_strings(json_log: io.StringIO, client: Any) -> None:
    client.get("/healthz?token=very-private-value")

    text = json_log.getvalue()
    assert "GET /healthz 200" in text
    assert "very-private-value" not in text


def test_webhook_requests_log_the_session_they_are_for(json_log: io.StringIO, client: Any) -> None:
    client.post("/webhooks/waha?session=3f1c2d9e-session", data=b"{}", content_type="application/json")

    access = [line for line in lines(json_log) if line["logger"] == "portal.access"]
    assert access[-1]["session"] == "3f1c2d9e-session"


def test_log_context_adds_tenant_and_session_outside_requests(json_log: io.StringIO) -> None:
    with telemetry.log_context(tenant="acme", session="sess-1", job="sync"):
        logging.getLogger("portal.jobs.test").info("synced")
    logging.getLogger("portal.jobs.test").info("after")

    synced, after = lines(json_log)[-2:]
    assert (synced["tenant"], synced["session"], synced["job"]) == ("acme", "sess-1", "sync")
    assert (after["tenant"], after["session"]) == ("-", "-")


@pytest.mark.parametrize("leak, secret", [
    ("calling WAHA with X-Api-Key: k-0123456789abcdef", "k-0123456789abcdef"),
    ("headers {'Authorization': 'Bearer wp_0123456789ab_SECRETSECRETSECRETSECRET'}", "SECRETSECRETSECRETSECRET"),
    ("GET http://waha:3000/api/files/a.jpg?x-api-key=qwertyuiop12345", "qwertyuiop12345"),
    ("endpoint secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("connecting to postgresql://portal:db-password-1@postgres/portal", "db-password-1"),
])
def test_secrets_in_log_lines_are_masked(json_log: io.StringIO, leak: str, secret: str) -> None:
    logging.getLogger("portal.test").warning("%s", leak)

    text = json_log.getvalue()
    assert secret not in text
    assert "[REDACTED]" in text


def test_configured_secrets_are_masked_wherever_they_appear(app: Any, json_log: io.StringIO) -> None:
    waha_key = app.config["WAHA_API_KEY"]

    logging.getLogger("portal.test").info("the key is %s, really", waha_key)

    assert waha_key not in json_log.getvalue()


def test_secrets_in_tracebacks_are_masked(json_log: io.StringIO) -> None:
    try:
        raise RuntimeError("refused: api_key=abcdef0123456789")
    except RuntimeError:
        logging.getLogger("portal.test").exception("call failed")

    [record] = lines(json_log)[-1:]
    assert "RuntimeError" in record["exc_info"]
    assert "abcdef0123456789" not in json_log.getvalue()
