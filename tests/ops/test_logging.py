"""Structured logs: JSON lines with request id, tenant and session; secrets masked before they are written."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import pytest

from portal import telemetry
from tests.builders import new_session
from tests.helpers import csrf_token


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


@pytest.mark.parametrize(
    "leak, secret",
    [
        ("calling WAHA with X-Api-Key: k-0123456789abcdef", "k-0123456789abcdef"),
        ("headers {'Authorization': 'Bearer wp_0123456789ab_SECRETSECRETSECRETSECRET'}", "SECRETSECRETSECRETSECRET"),
        ("GET http://waha:3000/api/files/a.jpg?x-api-key=qwertyuiop12345", "qwertyuiop12345"),
        ("endpoint secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("connecting to postgresql://portal:db-password-1@postgres/portal", "db-password-1"),
    ],
)
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


# ---- credentials in paths and query strings --------------------------------------------------------------------

RESET_TOKEN = "Zq8rT3-reset-token-0123456789abcdef"


@pytest.mark.parametrize(
    "path", [f"/account/reset/{RESET_TOKEN}", f"/invite/{RESET_TOKEN}", f"/admin/tokens/created/{RESET_TOKEN}"]
)
def test_token_bearing_paths_are_masked_in_the_access_log(json_log: io.StringIO, client: Any, path: str) -> None:
    client.get(path)

    text = json_log.getvalue()
    assert RESET_TOKEN not in text
    assert any(line["logger"] == "portal.access" and "[REDACTED]" in line["message"] for line in lines(json_log))


def test_the_session_webhook_secret_page_answers_with_its_key_masked_in_the_access_log(
    json_log: io.StringIO, owner: Any, tenant: Any, login: Any
) -> None:
    # The rule /sessions/<session_id>/webhook-secret/<key> holds "secret" in its fixed text as well: the page must
    # still answer (the access line is written after the view) and log its one-time key masked.
    client = login(owner)
    session = new_session(tenant)
    url = f"/sessions/{session.id}/webhook-secret"
    created = client.post(url, data={"csrf_token": csrf_token(client, url)})
    key = created.headers["Location"].rsplit("/", 1)[1]

    page = client.get(created.headers["Location"])

    assert page.status_code == 200 and "whsec_" in page.get_data(as_text=True)
    access = [line["message"] for line in lines(json_log) if line["logger"] == "portal.access"]
    assert f"GET /sessions/{session.id}/webhook-secret/[REDACTED] 200" in " ".join(access)
    assert key not in json_log.getvalue()


def test_every_credential_in_every_route_of_the_portal_is_masked(app: Any) -> None:
    # Each URL rule with a credential variable, filled in: the credentials masked, every other part kept.
    checked = 0
    for rule in app.url_map.iter_rules():
        if not telemetry.SECRET_ROUTE_ARGS.intersection(rule.arguments):
            continue
        values = {name: f"v{i}-{name}-0123456789abcdef" for i, name in enumerate(sorted(rule.arguments))}
        path = rule.rule
        for name, value in values.items():
            path = re.sub(rf"<(?:[^:<>]+:)?{name}>", value, path)
        expected = path
        for name, value in values.items():
            if name in telemetry.SECRET_ROUTE_ARGS:
                expected = expected.replace(value, "[REDACTED]")

        assert telemetry.redact(f"GET {path} 200") == f"GET {expected} 200", rule.rule
        checked += 1
    assert checked >= 5  # reset, invitation, created token and endpoint, session webhook secret, ...


def test_token_bearing_paths_are_masked_in_any_logger_and_traceback(json_log: io.StringIO) -> None:
    # As Werkzeug's request log and an error report would write them.
    logging.getLogger("werkzeug").info('127.0.0.1 - - "GET /account/reset/%s HTTP/1.1" 200 -', RESET_TOKEN)
    try:
        raise RuntimeError(f"failed rendering https://portal.example.com/invite/{RESET_TOKEN}?next=/")
    except RuntimeError:
        logging.getLogger("portal.test").exception("error on /invite/%s", RESET_TOKEN)

    assert RESET_TOKEN not in json_log.getvalue()
    assert "/account/reset/[REDACTED]" in json_log.getvalue()


def test_ordinary_ids_in_paths_stay_readable(json_log: io.StringIO) -> None:
    logging.getLogger("portal.test").info("GET /sessions/sess_0123456789abcdef/live 200")
    assert "/sessions/sess_0123456789abcdef/live" in json_log.getvalue()


def test_one_time_codes_in_query_strings_are_masked(json_log: io.StringIO) -> None:
    logging.getLogger("portal.test").info("GET /auth/oidc/callback?code=auth-code-987654321&state=st-123456789 302")
    text = json_log.getvalue()
    assert "auth-code-987654321" not in text and "st-123456789" not in text


def test_development_mail_log_keeps_its_link(app: Any, json_log: io.StringIO, monkeypatch: Any) -> None:
    from portal.mail import send_mail

    monkeypatch.setitem(app.config, "TESTING", False)
    with app.app_context():
        send_mail("someone@example.com", "Reset", f"Open http://127.0.0.1:5000/account/reset/{RESET_TOKEN}")
    assert f"/account/reset/{RESET_TOKEN}" in json_log.getvalue()
