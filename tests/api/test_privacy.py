"""A person's export and erase over /waha: the ZIP, the erase's answer, who may, and another tenant's number."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Contact, Message, OptOut
from portal.storage import storage
from tests.builders import make_token, new_session, stored_message
from tests.helpers import Api

PERSON = "491709999999"
CHAT = f"{PERSON}@c.us"


@pytest.fixture
def privacy_api(client: Any, tenant: Any) -> Api:
    return Api(client, make_token(tenant, ["contacts:privacy", "messages:read"]))


@pytest.fixture
def person(tenant: Any) -> Any:
    session = new_session(tenant, "Support")
    db.session.add(Contact(tenant_id=tenant.id, chat_id=CHAT, phone=PERSON, push_name="Ada", tags=[]))
    db.session.add(OptOut(tenant_id=tenant.id, chat_id=CHAT, source="manual"))
    db.session.commit()
    storage().save(f"t/{tenant.id}/media/a.png", b"png bytes", "image/png")
    stored_message(tenant, session, chat_id=CHAT, body="hello")
    stored_message(
        tenant, session, chat_id=CHAT, body="pic", media={"status": "stored", "key": f"t/{tenant.id}/media/a.png"}
    )
    return session


def test_export_answers_a_zip_of_the_persons_data(privacy_api, person):
    response = privacy_api.get(f"/waha/contacts/+{PERSON}/export")

    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    messages = json.loads(archive.read("messages.json"))
    assert sorted(m["body"] for m in messages) == ["hello", "pic"]
    assert archive.read(next(m["file"] for m in messages if m.get("file"))) == b"png bytes"
    assert json.loads(archive.read("contact.json"))["optOut"]["source"] == "manual"


def test_erase_answers_the_counts_and_leaves_nothing(privacy_api, person):
    response = privacy_api.call("DELETE", f"/waha/contacts/{PERSON}")

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["phone"] == "+49********99"
    assert (body["erased"]["messages"], body["erased"]["files"], body["erased"]["contacts"]) == (2, 1, 1)
    assert body["erased"]["optOuts"] == 1
    assert db.session.scalar(select(func.count()).select_from(Message).where(Message.chat_id == CHAT)) == 0
    assert privacy_api.get(f"/waha/contacts/{PERSON}/export").status_code == 404


def test_erase_can_keep_the_opt_out(privacy_api, person):
    response = privacy_api.call("DELETE", f"/waha/contacts/{PERSON}?keepOptOut=true")

    assert response.get_json()["erased"]["optOuts"] == 0
    assert db.session.scalar(select(func.count()).select_from(OptOut)) == 1


def test_another_tenants_person_is_not_found(client, person):
    from tests.builders import make_tenant

    other = Api(client, make_token(make_tenant("globex", name="Globex"), ["contacts:privacy"]))

    for method, path in (("GET", f"/waha/contacts/{PERSON}/export"), ("DELETE", f"/waha/contacts/{PERSON}")):
        response = other.call(method, path)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "contact_not_found"
    assert db.session.scalar(select(func.count()).select_from(Message).where(Message.chat_id == CHAT)) == 2


def test_a_token_without_the_privacy_scope_is_refused(api, person):
    assert api.get(f"/waha/contacts/{PERSON}/export").status_code == 403
    assert api.call("DELETE", f"/waha/contacts/{PERSON}").status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Message).where(Message.chat_id == CHAT)) == 2


def test_a_value_that_is_no_phone_number_is_a_validation_error(privacy_api):
    response = privacy_api.get("/waha/contacts/not-a-number/export")

    assert response.status_code == 400 and response.get_json()["error"]["code"] == "validation_error"
