"""Malformed requests answer a clear 4xx with the usual error body: ids, methods, repeated parameters, NUL,
deep JSON, dates at the edge of the calendar, a malformed Referer, and a spent create key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from portal.inputs import JsonTooDeep, loads
from tests.helpers import Api, csrf_token


@pytest.mark.parametrize("raw", ["²", "١٢", "99999999999999999999", "9223372036854775808", "0"])
def test_message_id_that_cannot_be_a_row_answers_404(api: Api, raw: str) -> None:
    response = api.get(f"/waha/messages/{raw}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "message_not_found"


@pytest.mark.parametrize("raw", ["²", "99999999999999999999"])
def test_delivery_id_that_cannot_be_a_row_answers_404(api: Api, raw: str) -> None:
    response = api.post(f"/waha/webhooks/deliveries/{raw}/replay")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "delivery_not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/admin/tokens/2147483648/revoke",
        "/admin/tokens/²/revoke",
        "/messages/99999999999999999999/media",
        "/platform/tenants/١٢",
    ],
)
def test_page_id_that_cannot_be_a_row_answers_404(app: Any, owner: Any, login: Any, path: str) -> None:
    response = login(owner).get(path)
    assert response.status_code == 404


def test_method_not_allowed_carries_allow_and_the_error_body(client: FlaskClient, token: str) -> None:
    response = client.patch("/waha/sessions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_method_not_allowed_on_a_page_carries_allow(client: FlaskClient) -> None:
    response = client.put("/login")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}


def test_repeated_query_parameter_is_refused_naming_it(api: Api) -> None:
    response = api.get("/waha/messages?limit=1&limit=2")
    assert response.status_code == 400
    body = response.get_json()["error"]
    assert body["code"] == "validation_error"
    assert body["details"]["fields"] == [{"field": "limit", "message": "Give this parameter once."}]


def test_nul_in_a_query_answers_400(api: Api) -> None:
    response = api.get("/waha/messages?q=a%00b")
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["fields"][0]["field"] == "q"


def test_nul_in_a_json_text_answers_400(api: Api, session: dict[str, Any]) -> None:
    response = api.post(f"/waha/sessions/{session['id']}/send", json={"to": "+491701234567", "text": "a\u0000b"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"


def test_nul_in_a_form_field_answers_400(owner: Any, login: Any) -> None:
    client = login(owner)
    token = csrf_token(client, "/sessions/new")
    response = client.post("/sessions/new", data={"csrf_token": token, "name": "a\x00b"})
    assert response.status_code == 400


def test_multipart_part_without_a_name_answers_400(api: Api, session: dict[str, Any]) -> None:
    # A Content-Disposition without name= (or one a line break cut short) leaves the field nameless.
    body = (
        b'--B\r\nContent-Disposition: form-data; name="to"\r\n\r\n+491701234567\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n%PDF\r\n'
        b'--B\r\nContent-Disposition: form-data; name="cap\ntion"\r\n\r\nhello\r\n--B--\r\n'
    )
    response = api.post(
        f"/waha/sessions/{session['id']}/send/media",
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["fields"] == [{"field": "form", "message": "Every form field and file needs a name."}]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"name": ', "The body is not valid JSON: Expecting value: line 1 column 10 (char 9)."),
        (b"", "The body is empty; send a JSON object."),
        (b"  \n", "The body is empty; send a JSON object."),
        ('{"name": "Caf\u00e9"}'.encode("latin-1"), "The body is not UTF-8 text."),
    ],
)
def test_a_body_that_is_not_json_says_what_is_wrong_with_it(api: Api, body: bytes, says: str) -> None:
    response = api.post("/waha/sessions", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["fields"] == [{"field": "body", "message": says}]


def test_a_body_with_thousands_of_bad_fields_gets_an_answer_of_a_few(api: Api) -> None:
    response = api.post("/waha/sessions", json={"sessionName": "Sales", **{f"x{i}": i for i in range(5000)}})
    assert response.status_code == 400
    details = response.get_json()["error"]["details"]
    assert len(details["fields"]) == 50 and details["moreFields"] == 4950
    assert len(response.get_data()) < 10_000


def test_a_quick_reply_shortcut_out_of_form_says_the_rule(api: Api) -> None:
    response = api.post("/waha/quick-replies", json={"shortcut": "Hi there", "text": "Hello"})
    assert response.status_code == 400
    [field] = response.get_json()["error"]["details"]["fields"]
    assert field == {
        "field": "shortcut",
        "message": "Use 1-40 lower-case letters, digits, - or _, starting with a letter or digit.",
    }


def test_an_endpoint_without_query_parameters_refuses_one(api: Api, session: dict[str, Any]) -> None:
    for path in (f"/waha/sessions/{session['id']}", "/waha/usage", "/waha/campaigns", "/waha/quick-replies"):
        refused = api.get(path, query_string={"foo": "1"})
        assert refused.status_code == 400, path
        assert refused.get_json()["error"]["details"]["fields"] == [{"field": "foo", "message": "Unknown field."}]
        assert api.get(path).status_code == 200, path


def test_deeply_nested_json_answers_400(api: Api) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = api.post("/waha/sessions", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert "nested too deeply" in error["message"]


def test_json_loader_refuses_depth_beyond_the_limit() -> None:
    assert loads(json.dumps([[[1]]]), max_depth=3) == [[[1]]]
    with pytest.raises(JsonTooDeep):
        loads(json.dumps([[[[1]]]]), max_depth=3)
    with pytest.raises(JsonTooDeep):
        loads(b"[" * 200_000 + b"]" * 200_000)


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"])
def test_dates_at_the_edge_of_the_calendar_answer_400(api: Api, value: str) -> None:
    response = api.get("/waha/messages", query_string={"until": value})
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["fields"][0]["field"] == "until"


@pytest.mark.parametrize("path", ["/messages/?until=9999-12-31", "/admin/audit/?until=9999-12-31"])
def test_page_date_filter_at_the_end_of_the_calendar_is_a_form_error(owner: Any, login: Any, path: str) -> None:
    response = login(owner).get(path)
    assert response.status_code in (200, 400)
    assert "between the years" in response.get_data(as_text=True)


def test_method_override_in_the_query_is_ignored(owner: Any, login: Any) -> None:
    response = login(owner).get("/messages/?_method=POST&status=READ")
    assert response.status_code == 200


def test_malformed_referer_answers_400(app: Any, owner: Any, login: Any) -> None:
    client = login(owner)
    token = csrf_token(client, "/sessions/new")
    response = client.post(
        "/sessions/new",
        data={"csrf_token": token, "name": "x"},
        base_url="https://localhost",
        headers={"Referer": "https://localhost:port/sessions/new"},
    )
    assert response.status_code == 400
    assert "Referer" in response.get_data(as_text=True)


def test_create_key_replayed_after_the_session_was_deleted_answers_409(api: Api) -> None:
    headers = {"Idempotency-Key": "create-once-1"}
    created = api.post("/waha/sessions", json={"sessionName": "once"}, headers=headers)
    assert created.status_code == 201
    assert api.delete(f"/waha/sessions/{created.get_json()['id']}").status_code == 204
    replay = api.post("/waha/sessions", json={"sessionName": "once"}, headers=headers)
    assert replay.status_code == 409
    assert replay.get_json()["error"]["code"] == "idempotency_key_reused"
