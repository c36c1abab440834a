"""Schemathesis fuzzes every operation of /waha/openapi.json in-process (WSGI), with a token of every scope and
all of its checks: no 5xx, no answer the document does not promise, bad input refused, 405 with Allow.

Bounded for the suite: a fixed seed (derandomized), a few examples per operation, no shrinking. A second pass
sends valid requests to sessions that exist, so the services' rules behind the request's shape are probed too.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import phonenumbers
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from portal.extensions import db
from portal.models import utcnow
from tests.builders import make_token, scanning_session, working_session

EXAMPLES = 10

# The document's own formats (portal.api.schemas): a phone number valid in its country's numbering plan, and a
# recipient (such a number or a chat id). Example numbers of several countries, written the ways the API accepts.
_NUMBERS = [
    phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    for region in ("DE", "US", "GB", "BR", "IN", "NG", "ID")
]
PHONES = [phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164) for n in _NUMBERS] + [
    phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.INTERNATIONAL) for n in _NUMBERS
]
schemathesis.openapi.format("phone", st.sampled_from(PHONES))
schemathesis.openapi.format(
    "whatsapp-recipient",
    st.sampled_from(PHONES + ["491701234567@c.us", "120363025246125486@g.us", "123456789012345@lid"]),
)
# `public-url`: a URL whose host is a DNS name or a public IPv4 address (the destination policy, portal/net).
schemathesis.openapi.format(
    "public-url",
    st.sampled_from(
        [
            "https://example.com/hooks/whatsapp",
            "http://hooks.example.org:8080/in?tenant=7",
            "https://93.184.215.14/files/photo.jpg",
            "https://xn--mnchen-3ya.example/a",
        ]
    ),
)
# `emoji`: one emoji of Unicode's list (with a skin tone, a ZWJ sequence, a flag, a keycap), or "" to take it back.
schemathesis.openapi.format("emoji", st.sampled_from(["👍", "❤️", "👍🏽", "👨‍👩‍👧", "🇧🇷", "#️⃣", "🙏", ""]))
# `public-proxy`: host:port of a proxy on the public internet, with or without a scheme.
schemathesis.openapi.format(
    "public-proxy",
    st.sampled_from(["proxy.example.com:3128", "socks5://93.184.215.14:1080", "HTTP://proxy.example.org:8080/"]),
)


def _sent_otherwise(query: Any) -> bool:
    """Whether a query value reaches the server as something else than the invalid value it stands for: an empty
    list or object is left out (valid), a list inside a list is sent as its text (a valid string)."""
    values = (query or {}).values() if isinstance(query, dict) else ()
    return any(
        value in ([], {}) or (isinstance(value, list) and any(isinstance(item, (list, dict)) for item in value))
        for value in values
    )


def _credential_undone(case: Any) -> bool:
    """Whether the case breaks its headers (the credential among them) and something else: the harness sends its
    own credential, so the checks would see two broken parts where the server got one."""
    meta = case.meta
    others = (ParameterLocation.PATH, ParameterLocation.QUERY, ParameterLocation.COOKIE, ParameterLocation.BODY)
    return meta is not None and meta.is_negative_at(ParameterLocation.HEADER) and any(map(meta.is_negative_at, others))


def _probe(operation: Any, mode: GenerationMode, headers: dict[str, str], session_id: str | None = None) -> None:
    """Run the operation's generated cases of one mode through every check; raises on the first failure.

    With `session_id`, every case names that session instead of a made-up one (which answers 404 before the
    service's own rules are reached)."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if mode is GenerationMode.POSITIVE and case.query:
            # A cursor is an opaque token the server issued (nextCursor); one made up to fit its pattern
            # is rightly refused (400 validation_error, asserted in test_bad_requests.py).
            case.query.pop("cursor", None)
            # JSON Schema counts 60.0 as an integer, and the generator may send one: as query text "60.0" it is
            # no whole number in digits, for the document read as text and the server alike
            # (test_document_agreement.py). The generated number goes as the integer it stands for.
            for name, value in list(case.query.items()):
                if isinstance(value, float) and value.is_integer():
                    case.query[name] = int(value)
        if mode is GenerationMode.NEGATIVE and (_sent_otherwise(case.query) or _credential_undone(case)):
            reject()
        if session_id is not None:
            case.path_parameters["session_id"] = session_id
            if isinstance(case.body, dict) and "file" in case.body:
                # The upload's bytes are random: a chosen `type` must fit them, a rule of the file's content the
                # document states in words. Without it the kind follows the file.
                case.body.pop("type", None)
            if isinstance(case.body, dict):
                # replyTo names a message the server stored, like a cursor it issued: a made-up id is rightly
                # refused (400 validation_error, asserted in test_actions.py).
                case.body.pop("replyTo", None)
                if case.body.get("sendAt") is not None:
                    # sendAt must lie within the coming year, a rule of the moment the request arrives that the
                    # document states in words (refusals are asserted in test_scheduled.py): a time in that window.
                    case.body["sendAt"] = (utcnow() + timedelta(hours=1)).isoformat()
        case.call_and_validate(headers=headers)

    run()


def _check(operation: Any, modes: tuple[GenerationMode, ...], headers: dict[str, str], **kwargs: Any) -> list[str]:
    failures = []
    for mode in modes:
        try:
            _probe(operation, mode, headers, **kwargs)
        except Unsatisfiable:
            # an operation that takes no input (GET /waha/docs) has no invalid input to send
            assert mode is GenerationMode.NEGATIVE, operation.label
        except (Exception, BaseExceptionGroup) as exc:  # Schemathesis reports several failures as a group
            failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


# The harness calls the app as WSGI, where nothing undoes a Content-Encoding; answers are read as sent.
PLAIN = {"Accept-Encoding": "identity"}


@pytest.mark.timeout(600)  # every operation of the document, twice: about a minute on a quiet machine
def test_api_keeps_its_document(app: Flask, tenant: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Schemathesis probes every operation with missing and invalid credentials from one address; the per-address
    # throttle of failed authentications (tests/api/test_auth_throttle.py) would answer those probes 429.
    monkeypatch.setitem(app.config, "API_AUTH_FAILURE_LIMIT", 100_000)
    bearer = {"Authorization": f"Bearer {make_token(tenant)}", **PLAIN}
    schema = schemathesis.openapi.from_wsgi("/waha/openapi.json", app)
    failures: list[str] = []
    for found in schema.get_all_operations():
        failures += _check(found.ok(), (GenerationMode.POSITIVE, GenerationMode.NEGATIVE), bearer)
    assert not failures, "\n\n".join(failures)


# Operations on a session that change what it is (the others are probed on a WORKING session, or on one that shows
# its QR code, as they need).
_LIFECYCLE = re.compile(r"^(DELETE /waha/sessions/\{session_id\}|POST .*/(start|stop|restart|logout))$")
_LINKING = re.compile(r"/(qr|pairing-code|screen)$")


@pytest.mark.timeout(600)
def test_api_keeps_its_document_on_real_sessions(
    app: Flask, tenant: Any, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Valid requests for a session that exists reach the services' rules (media types, captions, pacing, WAHA),
    # which a made-up session id never does.
    monkeypatch.setitem(app.config, "API_AUTH_FAILURE_LIMIT", 100_000)
    tenant.send_rate_per_minute = 10_000
    db.session.commit()
    working = working_session(tenant, sim, name="Fuzz working").id
    scanning = scanning_session(tenant, name="Fuzz scanning").id
    bearer = {"Authorization": f"Bearer {make_token(tenant)}", **PLAIN}
    schema = schemathesis.openapi.from_wsgi("/waha/openapi.json", app)
    failures: list[str] = []
    for found in schema.get_all_operations():
        operation = found.ok()
        if "{session_id}" not in operation.path or _LIFECYCLE.match(operation.label):
            continue
        session_id = scanning if _LINKING.search(operation.path) else working
        failures += _check(operation, (GenerationMode.POSITIVE,), bearer, session_id=session_id)
    assert not failures, "\n\n".join(failures)
