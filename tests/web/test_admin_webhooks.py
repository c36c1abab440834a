"""Webhook endpoint pages: create (secret once), edit, disable, delete, test event, delivery log and replay."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from portal.extensions import db
from portal.models import WebhookDelivery, WebhookEndpoint
from portal.services import forwarding
from tests.builders import TEST_ACTOR, make_tenant, member
from tests.helpers import find, post, text

PAGE = "/admin/webhooks/"


class Receiver:
    """A tenant's system over loopback: records deliveries and answers with `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[dict] = []
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _app(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        self.received.append({"headers": dict(request.headers), "body": request.get_data(as_text=True)})
        return Response("ok" if self.status < 300 else "nope", status=self.status)(environ, start_response)


@pytest.fixture(scope="module")
def receiver():
    server = Receiver()
    yield server
    server.server.shutdown()


@pytest.fixture
def endpoint(tenant, receiver):
    receiver.status, receiver.received[:] = 200, []
    row, _ = forwarding.create_endpoint(tenant, TEST_ACTOR, url=receiver.url, events=["message"], description="CRM")
    return row


def _secret_on(body: str) -> str:
    return re.search(r'id="endpoint-secret"[^>]*>(whsec_[^<]+)<', body).group(1)


@pytest.mark.parametrize("role,status", [("viewer", 200), ("operator", 200), ("admin", 200), ("owner", 200)])
def test_webhooks_page_is_readable_by_every_role(login, tenant, role, status):
    assert login(member(tenant, role)).get(PAGE).status_code == status


def test_webhooks_page_shows_an_empty_state(login, owner):
    body = text(login(owner).get(PAGE))
    assert "No endpoints yet" in body and "Add an endpoint" in body


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_read_only_roles_see_no_controls(login, tenant, endpoint, role):
    client = login(member(tenant, role))
    body = text(client.get(f"{PAGE}{endpoint.id}"))
    assert endpoint.url in body
    assert "Send a test event" not in body and "Delete" not in body and "/edit" not in body
    assert "Add an endpoint" not in text(client.get(PAGE))


@pytest.mark.parametrize("role", ["viewer", "operator"])
@pytest.mark.parametrize("action", ["new", "{id}/edit", "{id}/enabled", "{id}/test", "{id}/delete", "{id}/rotate"])
def test_changes_by_direct_post_are_forbidden_to_read_only_roles(login, tenant, endpoint, role, action):
    response = post(
        login(member(tenant, role)),
        PAGE + action.format(id=endpoint.id),
        {"url": "http://127.0.0.1:9/x", "events": ["*"], "enabled": "0"},
    )
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(WebhookEndpoint, endpoint.id).is_enabled


def test_create_shows_the_secret_once(login, tenant, owner, receiver):
    client = login(owner)
    response = post(
        client,
        f"{PAGE}new",
        {"url": receiver.url, "events": ["message", "session.status"], "description": "Orders"},
        page=f"{PAGE}new",
    )
    assert response.status_code == 303
    location = response.headers["Location"]
    shown = client.get(location)
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    secret = _secret_on(text(shown))
    assert secret not in location
    row = db.session.scalar(select(WebhookEndpoint))
    assert row.secret == secret and row.events == ["message", "session.status"]
    assert secret not in text(client.get(f"{PAGE}{row.id}"))


def test_secret_page_opened_again_says_it_was_shown_and_adds_nothing(login, owner, receiver):
    client = login(owner)
    location = post(client, f"{PAGE}new", {"url": receiver.url, "events": ["*"]}, page=f"{PAGE}new").headers["Location"]
    secret = _secret_on(text(client.get(location)))
    again = client.get(location)
    assert again.status_code == 410
    assert "shown only once" in text(again) and secret not in text(again)
    assert len(db.session.scalars(select(WebhookEndpoint)).all()) == 1


def test_create_with_every_event_stores_a_star(login, owner, receiver):
    post(login(owner), f"{PAGE}new", {"url": receiver.url, "events": ["*", "message"]}, page=f"{PAGE}new")
    assert db.session.scalar(select(WebhookEndpoint)).events == ["*"]


def test_create_with_a_bad_url_is_refused_next_to_the_field(login, owner):
    response = post(login(owner), f"{PAGE}new", {"url": "ftp://example.com/x", "events": ["*"]}, page=f"{PAGE}new")
    assert response.status_code == 400
    assert 'id="url-error"' in text(response)
    assert db.session.scalar(select(WebhookEndpoint)) is None


def test_create_with_a_private_address_says_how_to_allow_it(app, login, owner, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE", False)
    response = post(
        login(owner), f"{PAGE}new", {"url": "http://127.0.0.1:9999/hook", "events": ["*"]}, page=f"{PAGE}new"
    )
    assert response.status_code == 400
    body = text(response)
    assert 'id="url-error"' in body and 'id="private-hint"' in body
    assert "WEBHOOK_ALLOW_PRIVATE=true" in body
    assert db.session.scalar(select(WebhookEndpoint)) is None


def test_create_with_a_bad_url_gives_no_private_address_hint(login, owner):
    body = text(post(login(owner), f"{PAGE}new", {"url": "ftp://example.com/x", "events": ["*"]}, page=f"{PAGE}new"))
    assert 'id="url-error"' in body and "WEBHOOK_ALLOW_PRIVATE" not in body


def test_edit_to_a_private_address_says_how_to_allow_it(app, login, owner, endpoint, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE", False)
    response = post(
        login(owner),
        f"{PAGE}{endpoint.id}/edit",
        {"url": "http://localhost:9/x", "events": ["*"]},
        page=f"{PAGE}{endpoint.id}/edit",
    )
    assert response.status_code == 400 and "WEBHOOK_ALLOW_PRIVATE=true" in text(response)


def test_create_without_csrf_token_is_rejected(login, owner, receiver):
    response = login(owner).post(f"{PAGE}new", data={"url": receiver.url, "events": ["*"]})
    assert response.status_code == 400
    assert db.session.scalar(select(WebhookEndpoint)) is None


def test_edit_changes_url_events_and_description(login, owner, endpoint, receiver):
    client = login(owner)
    form = text(client.get(f"{PAGE}{endpoint.id}/edit"))
    assert 'value="CRM"' in form
    assert re.search(r'<input checked id="events-\d+" name="events" type="checkbox" value="message">', form)
    response = post(
        client,
        f"{PAGE}{endpoint.id}/edit",
        {"url": receiver.url + "?v=2", "events": ["message.ack"], "description": "CRM v2"},
        page=PAGE,
    )
    assert response.status_code == 302
    db.session.expire_all()
    row = db.session.get(WebhookEndpoint, endpoint.id)
    assert (row.url, row.events, row.description) == (receiver.url + "?v=2", ["message.ack"], "CRM v2")


def test_disable_and_enable(login, owner, endpoint):
    client = login(owner)
    post(client, f"{PAGE}{endpoint.id}/enabled", {"enabled": "0"}, page=PAGE)
    db.session.expire_all()
    assert not db.session.get(WebhookEndpoint, endpoint.id).is_enabled
    assert "disabled" in text(client.get(f"{PAGE}{endpoint.id}"))
    post(client, f"{PAGE}{endpoint.id}/enabled", {"enabled": "1"}, page=PAGE)
    db.session.expire_all()
    assert db.session.get(WebhookEndpoint, endpoint.id).is_enabled


def test_delete_asks_first_then_deletes(login, owner, endpoint):
    client = login(owner)
    assert "Delete the endpoint" in text(client.get(f"{PAGE}{endpoint.id}/delete"))
    response = post(client, f"{PAGE}{endpoint.id}/delete", page=PAGE)
    assert response.status_code == 302
    assert db.session.scalar(select(WebhookEndpoint)) is None


def test_rotate_shows_a_new_secret_once(login, owner, endpoint):
    old = endpoint.secret
    client = login(owner)
    response = post(client, f"{PAGE}{endpoint.id}/rotate", page=PAGE)
    assert response.status_code == 303
    secret = _secret_on(text(client.get(response.headers["Location"])))
    db.session.expire_all()
    assert secret != old and db.session.get(WebhookEndpoint, endpoint.id).secret == secret
    # a reload shows nothing and makes no newer secret
    assert client.get(response.headers["Location"]).status_code == 410
    db.session.expire_all()
    assert db.session.get(WebhookEndpoint, endpoint.id).secret == secret


def test_test_event_is_delivered_and_logged(login, owner, endpoint, receiver, run_jobs):
    client = login(owner)
    response = post(client, f"{PAGE}{endpoint.id}/test", page=PAGE)
    assert response.status_code == 302
    run_jobs()
    assert receiver.received and '"type":"test"' in receiver.received[-1]["body"]
    log = text(client.get(f"{PAGE}{endpoint.id}"))
    assert "succeeded" in log and "<code>200</code>" in log and "Replay" in log


def test_failed_delivery_shows_its_response_code_and_attempt(login, owner, endpoint, receiver, run_jobs):
    receiver.status = 500
    client = login(owner)
    post(client, f"{PAGE}{endpoint.id}/test", page=PAGE)
    run_jobs()
    body = text(client.get(f"{PAGE}{endpoint.id}?status=failed"))
    assert "<code>500</code>" in body and "answered HTTP 500" in body


def test_replay_queues_a_new_attempt(login, tenant, owner, endpoint, receiver, run_jobs):
    delivery = forwarding.send_test_event(tenant, endpoint.id, TEST_ACTOR)
    run_jobs()
    client = login(owner)
    response = post(client, f"{PAGE}deliveries/{delivery.id}/replay", page=PAGE)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"{PAGE}{endpoint.id}")
    run_jobs()
    attempts = db.session.scalars(select(WebhookDelivery.attempt).where(WebhookDelivery.msg_id == delivery.msg_id))
    assert sorted(attempts) == [1, 2]
    assert len(receiver.received) == 2


def test_delivery_log_filters_by_status_with_htmx(login, tenant, owner, endpoint, run_jobs):
    forwarding.send_test_event(tenant, endpoint.id, TEST_ACTOR)
    run_jobs()
    client = login(owner)
    fragment = text(
        client.get(f"{PAGE}{endpoint.id}?status=dead", headers={"HX-Request": "true", "HX-Target": "deliveries"})
    )
    assert "<html" not in fragment and "No dead deliveries" in fragment


def test_empty_delivery_log_says_so(login, owner, endpoint):
    assert "Nothing was delivered to this endpoint yet" in text(login(owner).get(f"{PAGE}{endpoint.id}"))


@pytest.mark.parametrize("path", ["{id}", "{id}/edit", "{id}/delete", "{id}/rotate"])
def test_another_tenants_endpoint_pages_are_not_found(login, owner, receiver, path):
    theirs, _ = forwarding.create_endpoint(make_tenant("other"), TEST_ACTOR, url=receiver.url, events=["*"])
    assert login(owner).get(PAGE + path.format(id=theirs.id)).status_code == 404


@pytest.mark.parametrize("action", ["{id}/edit", "{id}/enabled", "{id}/test", "{id}/delete", "{id}/rotate"])
def test_another_tenants_endpoint_cannot_be_changed(login, owner, receiver, action):
    theirs, _ = forwarding.create_endpoint(make_tenant("other"), TEST_ACTOR, url=receiver.url, events=["*"])
    response = post(
        login(owner),
        PAGE + action.format(id=theirs.id),
        {"url": receiver.url, "events": ["*"], "enabled": "0"},
        page=PAGE,
    )
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(WebhookEndpoint, theirs.id).is_enabled


def test_another_tenants_delivery_cannot_be_replayed(login, owner, receiver):
    other = make_tenant("other")
    theirs, _ = forwarding.create_endpoint(other, TEST_ACTOR, url=receiver.url, events=["*"])
    delivery = forwarding.send_test_event(other, theirs.id, TEST_ACTOR)
    response = post(login(owner), f"{PAGE}deliveries/{delivery.id}/replay", page=PAGE)
    assert response.status_code == 404
    assert db.session.scalar(select(WebhookDelivery.attempt).order_by(WebhookDelivery.attempt.desc())) == 1


# ---- the delivery log follows a test event, shows what was sent and answered, and refuses unknown filters ----


def test_delivery_log_refreshes_itself_until_the_test_event_is_delivered(login, owner, endpoint, receiver, run_jobs):
    client = login(owner)
    post(client, f"{PAGE}{endpoint.id}/test", page=PAGE)
    page = text(client.get(f"{PAGE}{endpoint.id}"))
    section = find(r'(<section id="deliveries"[^>]*>)', page)
    assert f'hx-get="{PAGE}{endpoint.id}"' in section and 'hx-trigger="every 3s"' in section
    assert "pending" in page

    run_jobs()
    fragment = text(client.get(f"{PAGE}{endpoint.id}", headers={"HX-Request": "true", "HX-Target": "deliveries"}))
    assert "<html" not in fragment and "succeeded" in fragment
    assert "hx-trigger" not in find(r'(<section id="deliveries"[^>]*>)', fragment)  # settled: it stops


def test_delivery_log_shows_the_payload_sent_and_the_response(login, owner, endpoint, receiver, run_jobs):
    receiver.status = 500
    client = login(owner)
    post(client, f"{PAGE}{endpoint.id}/test", page=PAGE)
    run_jobs()
    body = text(client.get(f"{PAGE}{endpoint.id}"))
    assert "Payload and response" in body
    assert "This is a test event from WAHA Portal." in body and '"type": "test"' in body
    assert re.search(r"HTTP 500\s*nope", body)


def test_delivery_log_refuses_an_unknown_status_filter(login, owner, endpoint):
    response = login(owner).get(f"{PAGE}{endpoint.id}?status=bogus")
    assert response.status_code == 400
    assert "Status must be one of pending, succeeded, failed, dead." in text(response)


def test_failed_deliveries_figure_links_to_the_failed_deliveries(login, owner, endpoint, receiver, run_jobs):
    receiver.status = 500
    client = login(owner)
    post(client, f"{PAGE}{endpoint.id}/test", page=PAGE)
    run_jobs()
    dashboard = text(client.get("/"))
    link = find(
        r'<a class="card stat-card[^"]*" href="([^"]+)">\s*<span class="stat" id="stat-failed-deliveries">', dashboard
    )
    assert link == f"{PAGE}deliveries?status=failed"
    log = text(client.get(link))
    assert "Webhook deliveries" in log and endpoint.url in log and "<code>500</code>" in log
    assert "succeeded</span>" not in log


def test_all_deliveries_log_shows_only_this_tenants(login, owner, endpoint, receiver, run_jobs):
    other = make_tenant("globex", name="Globex")
    forwarding.send_test_event(
        other, forwarding.create_endpoint(other, TEST_ACTOR, url=receiver.url + "?globex")[0].id, TEST_ACTOR
    )
    run_jobs()
    log = text(login(owner).get(f"{PAGE}deliveries"))
    assert "?globex" not in log and "Nothing was delivered yet." in log
