"""/waha/webhooks: endpoints and delivery attempts of the caller's tenant, and replaying an attempt."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import WebhookDelivery, WebhookEndpoint
from portal.services import forwarding
from tests.builders import TEST_ACTOR, make_token
from tests.helpers import Api


def _endpoint(tenant: Any, url: str = "http://127.0.0.1:9/hook") -> WebhookEndpoint:
    endpoint, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=url, events=["message"], description="orders")
    return endpoint


def _delivery(tenant: Any, endpoint: WebhookEndpoint, n: int, status: str = "succeeded") -> WebhookDelivery:
    row = WebhookDelivery(
        tenant_id=tenant.id,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        msg_id=f"evt_{n}",
        event_type="message",
        payload={"n": n},
        attempt=1,
        status=status,
        response_status=200 if status == "succeeded" else 500,
    )
    db.session.add(row)
    db.session.commit()
    return row


def test_list_endpoints_answers_them_without_secrets(api: Api, tenant: Any) -> None:
    endpoint = _endpoint(tenant)
    body = api.get("/waha/webhooks/endpoints").get_json()
    assert body["data"] == [
        {
            "id": endpoint.id,
            "url": endpoint.url,
            "description": "orders",
            "events": ["message"],
            "enabled": True,
            "createdAt": body["data"][0]["createdAt"],
        }
    ]
    assert endpoint.secret not in str(body)


def test_list_deliveries_pages_newest_first(api: Api, tenant: Any) -> None:
    endpoint = _endpoint(tenant)
    ids = [_delivery(tenant, endpoint, n).id for n in range(3)]
    first = api.get("/waha/webhooks/deliveries?limit=2").get_json()
    second = api.get(f"/waha/webhooks/deliveries?limit=2&cursor={first['nextCursor']}").get_json()
    assert [d["id"] for d in first["data"] + second["data"]] == ids[::-1]
    assert second["nextCursor"] is None


def test_list_deliveries_filters_by_endpoint_and_status(api: Api, tenant: Any) -> None:
    one, two = _endpoint(tenant), _endpoint(tenant, "http://127.0.0.1:9/other")
    _delivery(tenant, one, 1, "succeeded")
    dead = _delivery(tenant, one, 2, "dead")
    _delivery(tenant, two, 3, "dead")
    body = api.get(f"/waha/webhooks/deliveries?endpointId={one.id}&status=dead").get_json()
    assert [(d["id"], d["endpointId"], d["status"]) for d in body["data"]] == [(dead.id, one.id, "dead")]


def test_list_deliveries_with_unknown_status_is_refused(api: Api) -> None:
    response = api.get("/waha/webhooks/deliveries?status=lost")
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["fields"][0]["field"] == "status"


def test_replay_creates_a_new_pending_attempt(api: Api, tenant: Any) -> None:
    original = _delivery(tenant, _endpoint(tenant), 1, "dead")
    response = api.post(f"/waha/webhooks/deliveries/{original.id}/replay")
    assert response.status_code == 202
    body = response.get_json()
    assert (body["msgId"], body["attempt"], body["status"]) == (original.msg_id, 2, "pending")
    count = db.session.scalar(
        select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.msg_id == original.msg_id)
    )
    assert count == 2 and db.session.get(WebhookDelivery, body["id"]) is not None


def test_replay_of_another_tenants_delivery_is_not_found(api: Api, other_tenant: Any) -> None:
    theirs = _delivery(other_tenant, _endpoint(other_tenant), 1, "dead")
    response = api.post(f"/waha/webhooks/deliveries/{theirs.id}/replay")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "delivery_not_found"


def test_list_deliveries_of_another_tenants_endpoint_is_not_found(api: Api, other_tenant: Any) -> None:
    theirs = _endpoint(other_tenant)
    response = api.get(f"/waha/webhooks/deliveries?endpointId={theirs.id}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "endpoint_not_found"


def test_replay_without_manage_scope_is_forbidden(api: Api, tenant: Any) -> None:
    original = _delivery(tenant, _endpoint(tenant), 1, "dead")
    reader = api.as_(make_token(tenant, scopes=["webhooks:read"]))
    response = reader.post(f"/waha/webhooks/deliveries/{original.id}/replay")
    assert response.status_code == 403
    assert response.get_json()["error"]["details"]["required"] == "webhooks:manage"


def test_list_deliveries_without_read_scope_is_forbidden(api: Api, tenant: Any) -> None:
    response = api.as_(make_token(tenant, scopes=["messages:read"])).get("/waha/webhooks/deliveries")
    assert response.status_code == 403
