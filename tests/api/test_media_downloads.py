"""Stored files served through the authorised routes on both backends (a local folder, a bucket on moto's S3
server): streamed with their type, name and length, Range requests, presigned redirects to the bucket, and the
errors (another tenant's file, a lost file, an unreachable bucket)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from portal.extensions import db
from portal.services.audit import Actor
from portal.storage import new_key, storage
from tests.builders import make_tenant, make_token, new_session, stored_message
from tests.helpers import Api
from tests.s3server import MEDIA_SETTINGS

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40  # 10 249 bytes
ACTOR = Actor(type="system", label="test")


def _message_with_file(tenant: Any, data: bytes = PDF, mimetype: str = "application/pdf", name: str = "report.pdf"):
    key = new_key(tenant.id, "m", ".pdf")
    storage().save(key, data, mimetype)
    session = new_session(tenant, f"Files {key[-8:]}")
    media = {"kind": "document", "mimetype": mimetype, "filename": name, "status": "stored", "key": key}
    return stored_message(tenant, session, direction="in", status="DEVICE", body=None, media=media), key


# ---- serving --------------------------------------------------------------------------------------------------


def test_api_streams_the_file_with_its_type_name_and_length(client, tenant, media_backend):
    message, _key = _message_with_file(tenant)
    api = Api(client, make_token(tenant))

    response = api.get(f"/waha/messages/{message.id}/media")

    assert response.status_code == 200 and response.get_data() == PDF
    assert response.mimetype == "application/pdf" and response.content_length == len(PDF)
    assert response.headers["Content-Disposition"] == "attachment; filename=report.pdf"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["Accept-Ranges"] == "bytes"


@pytest.mark.smoke
def test_a_range_request_gets_only_those_bytes(client, tenant, media_backend):
    message, _key = _message_with_file(tenant)
    api = Api(client, make_token(tenant))

    part = api.get(f"/waha/messages/{message.id}/media", headers={"Range": "bytes=100-199"})
    tail = api.get(f"/waha/messages/{message.id}/media", headers={"Range": "bytes=-50"})
    beyond = api.get(f"/waha/messages/{message.id}/media", headers={"Range": f"bytes={len(PDF) + 10}-"})

    assert part.status_code == 206 and part.get_data() == PDF[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(PDF)}" and part.content_length == 100
    assert tail.status_code == 206 and tail.get_data() == PDF[-50:]
    assert beyond.status_code == 416 and beyond.get_json()["error"]["code"] == "range_not_satisfiable"


def test_the_portal_page_streams_inline_types_inline_with_range(login, owner, tenant, media_backend):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 600
    message, _key = _message_with_file(tenant, png, "image/png", "photo.png")
    browser = login(owner)

    whole = browser.get(f"/messages/{message.id}/media")
    part = browser.get(f"/messages/{message.id}/media", headers={"Range": "bytes=0-7"})

    assert whole.status_code == 200 and whole.get_data() == png and whole.mimetype == "image/png"
    assert (
        whole.headers["Content-Disposition"].startswith("inline")
        and "photo.png" in whole.headers["Content-Disposition"]
    )
    assert whole.headers["Cache-Control"] == "private, max-age=300"
    assert part.status_code == 206 and part.get_data() == png[:8]


def test_another_tenants_file_is_not_found_and_a_lost_file_is_media_not_found(client, tenant, media_backend):
    message, key = _message_with_file(tenant)
    other = Api(client, make_token(make_tenant("globex")))
    mine = Api(client, make_token(tenant))

    assert other.get(f"/waha/messages/{message.id}/media").get_json()["error"]["code"] == "message_not_found"
    storage().delete(key)
    lost = mine.get(f"/waha/messages/{message.id}/media")
    assert lost.status_code == 404 and lost.get_json()["error"]["code"] == "media_not_found"


@pytest.fixture
def presigned(app):
    app.config.update(MEDIA_PRESIGNED_URLS=True, MEDIA_PRESIGNED_TTL=30)
    # media_backend restores the settings after the test


def test_presigned_urls_redirect_to_the_bucket_with_the_same_headers(
    client, tenant, s3_server, media_backend, presigned
):
    if media_backend == "local":
        # a folder has no URLs of its own: the setting changes nothing, the file is streamed
        message, _key = _message_with_file(tenant)
        response = Api(client, make_token(tenant)).get(f"/waha/messages/{message.id}/media")
        assert response.status_code == 200 and response.get_data() == PDF
        return
    message, key = _message_with_file(tenant)
    api = Api(client, make_token(tenant))

    response = api.get(f"/waha/messages/{message.id}/media")

    assert response.status_code == 302 and response.headers["Cache-Control"] == "private, no-store"
    location = response.headers["Location"]
    assert location.startswith(s3_server.url) and "X-Amz-Expires=30" in location and key in location
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200 and fetched.content == PDF
    assert fetched.headers["Content-Type"] == "application/pdf"
    assert fetched.headers["Content-Disposition"] == "attachment; filename=report.pdf"
    ranged = requests.get(location, headers={"Range": "bytes=0-3"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == PDF[:4]
    # the tenant check comes first: no URL for another tenant, and none for a file that is gone
    assert Api(client, make_token(make_tenant("globex"))).get(f"/waha/messages/{message.id}/media").status_code == 404
    storage().delete(key)
    assert api.get(f"/waha/messages/{message.id}/media").get_json()["error"]["code"] == "media_not_found"


def test_an_unreachable_bucket_is_a_503_not_a_500(app, client, tenant, s3_server):
    saved = {name: app.config.get(name) for name in MEDIA_SETTINGS}
    app.config.update(s3_server.settings("unreachable"))
    message = stored_message(
        tenant,
        new_session(tenant, "Down"),
        direction="in",
        media={"status": "stored", "key": new_key(tenant.id, "m", ".pdf"), "mimetype": "application/pdf"},
    )
    with socket_closed_port() as port:
        app.config["MEDIA_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
        try:
            response = Api(client, make_token(tenant)).get(f"/waha/messages/{message.id}/media")
        finally:
            app.config.update(saved)
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "storage_unavailable"
    assert response.headers["Retry-After"]


class socket_closed_port:
    """A loopback port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: Any) -> None:
        return None


def test_the_inbox_serves_a_contacts_picture_to_its_tenant_only(login, owner, tenant, media_backend):
    from portal.models import Contact
    from tests.builders import make_user

    picture = b"\x89PNG\r\n\x1a\n" + b"\1" * 100
    key = new_key(tenant.id, "a", ".png")
    storage().save(key, picture, "image/png")
    contact = Contact(
        tenant_id=tenant.id,
        chat_id="491700000009@c.us",
        phone="491700000009",
        tags=[],
        avatar_state="stored",
        avatar_key=key,
    )
    db.session.add(contact)
    db.session.commit()
    stranger = make_user(make_tenant("globex"), email="owner@globex.example.com")

    served = login(owner).get(f"/inbox/avatars/{contact.id}")

    assert served.status_code == 200 and served.get_data() == picture and served.mimetype == "image/png"
    assert served.headers["Cache-Control"] == "private, max-age=3600"
    assert login(stranger).get(f"/inbox/avatars/{contact.id}").status_code == 404
