"""The opt-out list over /waha: list (keyset pages, phone filter), add (idempotent), import, remove; scopes, bad
input and tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent
from portal.permissions import API_SCOPES
from portal.services import audit
from tests.builders import make_token
from tests.helpers import Api

PHONE = "+491701234567"


@pytest.fixture
def admin_api(client: Any, tenant: Any) -> Api:
    """A token that may also take numbers off the list (settings:manage)."""
    return Api(client, make_token(tenant, [*API_SCOPES, "settings:manage"]))


def test_add_answers_201_and_a_repeat_changes_nothing(api, tenant):
    first = api.post("/waha/opt-outs", json={"phone": "+49 170 1234567", "note": "asked by phone"})
    again = api.post("/waha/opt-outs", json={"phone": "491701234567@c.us"})

    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert (body["phone"], body["chatId"], body["source"], body["note"], body["added"]) == (
        PHONE,
        "491701234567@c.us",
        "manual",
        "asked by phone",
        True,
    )
    assert again.status_code == 201
    assert (again.get_json()["id"], again.get_json()["added"], again.get_json()["note"]) == (
        body["id"],
        False,
        "asked by phone",
    )
    assert db.session.scalar(select(func.count()).where(AuditEvent.action == "opt_out.add")) == 1


def test_list_pages_newest_first_and_filters_by_phone(api):
    numbers = ["+491701234561", "+491701234562", "+491701234563"]
    for number in numbers:
        assert api.post("/waha/opt-outs", json={"phone": number}).status_code == 201

    first = api.get("/waha/opt-outs?limit=2").get_json()
    second = api.get(f"/waha/opt-outs?limit=2&cursor={first['nextCursor']}").get_json()
    assert [row["phone"] for row in first["data"] + second["data"]] == numbers[::-1]
    assert second["nextCursor"] is None
    one = api.get("/waha/opt-outs", query_string={"phone": "0049 170 1234562"}).get_json()["data"]
    assert [row["phone"] for row in one] == ["+491701234562"]
    assert api.get("/waha/opt-outs", query_string={"phone": "+491709999999"}).get_json()["data"] == []
    assert [r["phone"] for r in api.get("/waha/opt-outs?q=4563").get_json()["data"]] == ["+491701234563"]


@pytest.mark.parametrize(
    "body",
    [
        {"phone": "12"},
        {"phone": "not a number"},
        {"phone": "+49170\u00001234567"},
        {"phone": "+" + "1" * 5000},
        {"phone": PHONE, "note": "x" * 201},
        {"phone": PHONE, "extra": 1},
        {},
    ],
)
def test_add_refuses_bad_input_with_400(api, body):
    response = api.post("/waha/opt-outs", json=body)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"
    assert api.get("/waha/opt-outs").get_json()["data"] == []


def test_list_refuses_a_bad_phone_or_cursor(api):
    for query in ({"phone": "abc"}, {"cursor": "!!"}, {"limit": "0"}, {"phone": "1" * 500}):
        response = api.get("/waha/opt-outs", query_string=query)
        assert response.status_code == 400, query
        assert response.get_json()["error"]["code"] == "validation_error"


def test_remove_answers_204_then_404_and_needs_settings_manage(api, admin_api, tenant):
    api.post("/waha/opt-outs", json={"phone": PHONE})

    assert api.delete("/waha/opt-outs/491701234567").status_code == 403  # messages:send alone cannot
    assert admin_api.delete("/waha/opt-outs/+491701234567").status_code == 204
    missing = admin_api.delete("/waha/opt-outs/491701234567@c.us")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "opt_out_not_found"
    assert api.get("/waha/opt-outs").get_json()["data"] == []
    assert audit.latest(tenant.id, "opt_out.remove").target_id == "491701234567@c.us"


@pytest.mark.parametrize("phone", ["abc", "12", "%00", "9" * 400])
def test_remove_refuses_a_bad_number_with_400(admin_api, phone):
    response = admin_api.delete(f"/waha/opt-outs/{phone}")

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"


def test_a_read_only_token_lists_but_cannot_add(client, tenant, api):
    reader = Api(client, make_token(tenant, ["messages:read"]))

    assert reader.get("/waha/opt-outs").status_code == 200
    assert reader.post("/waha/opt-outs", json={"phone": PHONE}).status_code == 403
    assert api.get("/waha/opt-outs").get_json()["data"] == []


def test_another_tenants_opt_out_is_not_found_nor_listed(api, admin_api, other_api, other_tenant):
    api.post("/waha/opt-outs", json={"phone": PHONE})
    other_admin = Api(other_api.client, make_token(other_tenant, [*API_SCOPES, "settings:manage"]))

    assert other_api.get("/waha/opt-outs").get_json()["data"] == []
    assert other_api.get("/waha/opt-outs", query_string={"phone": PHONE}).get_json()["data"] == []
    assert other_admin.delete("/waha/opt-outs/491701234567").status_code == 404
    assert [row["phone"] for row in api.get("/waha/opt-outs").get_json()["data"]] == [PHONE]


def test_import_reads_a_file_whose_lines_end_with_a_lone_carriage_return(api):
    response = api.post("/waha/opt-outs/import", json={"csv": "phone\r+49 170 1234567\r+491701234568\r"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["added"] == 2
    unreadable = api.post("/waha/opt-outs/import", json={"csv": 'phone\n+49 170 1234567\n"' + "a" * 140_000 + '"\n'})
    assert unreadable.status_code == 400
    assert (
        "Line 3 of the file cannot be read as CSV" in unreadable.get_json()["error"]["details"]["fields"][0]["message"]
    )


def test_import_adds_numbers_and_reports_bad_rows(api, tenant):
    api.post("/waha/opt-outs", json={"phone": PHONE})
    content = "name,phone\nAna,+49 170 1234567\nBen,+491701234568\nCid,nonsense\nDan,\nBen again,491701234568\n"

    response = api.post("/waha/opt-outs/import", json={"csv": content})

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {  # every row of the file is counted once: 1 + 1 + 1 + 2 = 5
        "added": 1,
        "already": 1,
        "repeated": 1,
        "errors": [{"line": 4, "reason": "invalid phone"}, {"line": 5, "reason": "missing phone"}],
        "errorCount": 2,
    }
    assert len(api.get("/waha/opt-outs").get_json()["data"]) == 2
    assert audit.latest(tenant.id, "opt_out.import").details["added"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"csv": ""},
        {"csv": "phone\n+49170\u00001234567\n"},
        {"csv": 'phone\n"' + "9" * 200_000 + '"\n'},
        {"csv": "phone\n+491701234567\n", "mode": "replace"},
        {"csv": ["phone"]},
    ],
)
def test_import_refuses_bad_input_with_400(api, body):
    response = api.post("/waha/opt-outs/import", json=body)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"
    assert api.get("/waha/opt-outs").get_json()["data"] == []
