"""Schemathesis fuzzes every operation of /waha/openapi.json in-process (WSGI), with a token of every scope and
all of its checks: no 5xx, no answer the document does not promise, bad input refused, 405 with Allow.

Bounded for the suite: a fixed seed (derandomized), a few examples per operation, no shrinking.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from tests.builders import make_token

EXAMPLES = 8


def test_api_keeps_its_document(app: Flask, tenant: Any) -> None:
    bearer = {"Authorization": f"Bearer {make_token(tenant)}"}
    schema = schemathesis.openapi.from_wsgi("/waha/openapi.json", app)
    failures: list[str] = []
    for found in schema.get_all_operations():
        operation = found.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                if mode is GenerationMode.POSITIVE and case.query:
                    # A cursor is an opaque token the server issued (nextCursor); one made up to fit its pattern
                    # is rightly refused (400 validation_error, asserted in test_bad_requests.py).
                    case.query.pop("cursor", None)
                case.call_and_validate(headers=bearer)

            try:
                run()
            except Exception as exc:  # noqa: BLE001 - each operation's finding is collected, all are reported
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
