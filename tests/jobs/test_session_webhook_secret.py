"""A session's own webhook URL, end to end: the secret answered by create verifies the deliveries; after a
rotation the old secret no longer verifies and the new one does; sessions made before secrets were stored
keep verifying with the derived value."""

from __future__ import annotations

from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from portal.extensions import db
from portal.models import WahaSession
from portal.services import session_secrets
from tests.builders import envelope, inbound_payload, make_token, new_session, post_events


def _api(client: Any, token: str, method: str, path: str, **kwargs: Any) -> Any:
    return client.open(path, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def _deliver(client: Any, run_jobs: Any, session: WahaSession, text: str) -> None:
    post_events(client, session, envelope(session, "message", inbound_payload(text)))
    run_jobs()


def test_deliveries_verify_with_the_created_secret_then_only_with_the_rotated_one(client, tenant, receiver, run_jobs):
    token = make_token(tenant)
    created = _api(
        client,
        token,
        "POST",
        "/waha/sessions",
        json={"sessionName": "Own hook", "webhookUrl": receiver.url, "webhookEvents": ["message"]},
    )
    assert created.status_code == 201
    first_secret = created.get_json()["webhookSecret"]
    session = db.session.get(WahaSession, created.get_json()["id"])

    _deliver(client, run_jobs, session, "before rotation")
    [request] = receiver.requests
    body = Webhook(first_secret).verify(request["body"], request["headers"])
    assert body["payload"]["body"] == "before rotation"

    rotated = _api(client, token, "POST", f"/waha/sessions/{session.id}/webhook-secret")
    assert rotated.status_code == 200
    new_secret = rotated.get_json()["webhookSecret"]

    _deliver(client, run_jobs, session, "after rotation")
    assert len(receiver.requests) == 2
    latest = receiver.requests[-1]
    with pytest.raises(WebhookVerificationError):
        Webhook(first_secret).verify(latest["body"], latest["headers"])
    assert Webhook(new_secret).verify(latest["body"], latest["headers"])["payload"]["body"] == "after rotation"


def test_session_without_a_stored_secret_keeps_the_derived_one_until_rotated(client, tenant, receiver, run_jobs):
    session = new_session(tenant, "Old hook", webhook_url=receiver.url, webhook_events=["message"])
    session.webhook_secret = None  # as a row from before the upgrade
    db.session.commit()

    _deliver(client, run_jobs, session, "legacy")
    legacy = session_secrets.derived_secret(session.id)
    Webhook(legacy).verify(receiver.requests[-1]["body"], receiver.requests[-1]["headers"])

    token = make_token(tenant)
    new_secret = _api(client, token, "POST", f"/waha/sessions/{session.id}/webhook-secret").get_json()["webhookSecret"]
    _deliver(client, run_jobs, session, "stored now")
    with pytest.raises(WebhookVerificationError):
        Webhook(legacy).verify(receiver.requests[-1]["body"], receiver.requests[-1]["headers"])
    Webhook(new_secret).verify(receiver.requests[-1]["body"], receiver.requests[-1]["headers"])
