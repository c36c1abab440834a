"""Sending and reading messages through /waha, against the WAHA simulator."""

from __future__ import annotations

import base64
import io
from datetime import timedelta
from typing import Any

import pytest

from portal.models import utcnow
from portal.services import audit
from tests.builders import create_session
from tests.helpers import Api

# A 1x1 PNG, so the image sniffing of the messages service sees a real image.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
TO = "+491701234567"
CHAT = "491701234567@c.us"


def _error(response: Any) -> dict[str, Any]:
    return response.get_json()["error"]


def _send(api: Api, session: dict[str, Any], body: dict[str, Any], **kwargs: Any) -> Any:
    return api.post(f"/waha/sessions/{session['id']}/send", json=body, **kwargs)


# ---- send text ------------------------------------------------------------------------------------------------


def test_metadata_comes_back_as_it_was_sent(api: Api, working_session: Any) -> None:
    metadata = {"order": "A1", "n": 5, "big": 9007199254740993, "ratio": 1.5, "paid": True, "gift": False}
    sent = _send(api, working_session, {"to": TO, "text": "Typed", "metadata": metadata})
    assert sent.status_code == 200, sent.get_json()
    assert sent.get_json()["metadata"] == metadata
    stored = api.get(f"/waha/messages/{sent.get_json()['id']}").get_json()["metadata"]
    assert stored == metadata and type(stored["paid"]) is bool and type(stored["n"]) is int
    for name in ("original_body", "forwarded_from", "receipts", "n" * 101, ""):  # the portal's own; too long; empty
        refused = _send(api, working_session, {"to": TO, "text": "x", "metadata": {name: "forged"}})
        assert refused.status_code == 400
        assert refused.get_json()["error"]["details"]["fields"][0]["field"].startswith("metadata")


def test_send_text_answers_message(api: Api, working_session: Any) -> None:
    response = _send(api, working_session, {"to": TO, "text": "Hello", "metadata": {"order": "1234"}})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["to"] == CHAT
    assert body["text"] == "Hello"
    assert body["direction"] == "out"
    assert body["status"] in ("PENDING", "SERVER")
    assert body["messageId"]
    assert body["metadata"] == {"order": "1234"}


def test_send_text_reaches_waha(api: Api, sim: Any, working_session: Any) -> None:
    _send(api, working_session, {"to": TO, "text": "Hello"})
    sent = sim.sent_messages(working_session["externalSessionId"])
    assert [(m["chatId"], m["body"]) for m in sent] == [(CHAT, "Hello")]


def test_send_is_audited(api: Api, tenant: Any, working_session: Any) -> None:
    body = _send(api, working_session, {"to": TO, "text": "Hello"}).get_json()
    event = audit.latest(tenant.id, "message.send")
    assert event.target_id == str(body["id"])
    assert event.actor_type == "token"


def test_send_repeated_idempotency_key_sends_once(api: Api, sim: Any, working_session: Any) -> None:
    headers = {"Idempotency-Key": "order-1234-confirmation"}
    first = _send(api, working_session, {"to": TO, "text": "Shipped"}, headers=headers)
    second = _send(api, working_session, {"to": TO, "text": "Shipped"}, headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.get_json()["id"] == second.get_json()["id"]
    assert len(sim.sent_messages(working_session["externalSessionId"])) == 1


def test_send_idempotency_key_with_other_text_is_409(api: Api, working_session: Any) -> None:
    headers = {"Idempotency-Key": "k-1"}
    _send(api, working_session, {"to": TO, "text": "one"}, headers=headers)
    response = _send(api, working_session, {"to": TO, "text": "two"}, headers=headers)
    assert response.status_code == 409
    assert _error(response)["code"] == "idempotency_key_reused"


def test_send_to_group_chat_id_is_accepted(api: Api, working_session: Any) -> None:
    response = _send(api, working_session, {"to": "120363025555555555@g.us", "text": "hi all"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["to"] == "120363025555555555@g.us"


# ---- send validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("to", ["12345", "+49 0000", "not a number", "+999123456789"])
def test_send_to_invalid_phone_is_400_on_to(api: Api, working_session: Any, to: str) -> None:
    response = _send(api, working_session, {"to": to, "text": "x"})
    assert response.status_code == 400
    assert [f["field"] for f in _error(response)["details"]["fields"]] == ["to"]


def test_send_to_malformed_chat_id_is_400_on_to(api: Api, working_session: Any) -> None:
    response = _send(api, working_session, {"to": "someone@example.com", "text": "x"})
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "to"


def test_send_without_text_or_media_is_400(api: Api, working_session: Any) -> None:
    response = _send(api, working_session, {"to": TO})
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "text"


def test_send_lists_all_bad_fields(api: Api, working_session: Any) -> None:
    response = _send(api, working_session, {"to": "x", "text": "", "priority": "high"})
    fields = {f["field"] for f in _error(response)["details"]["fields"]}
    assert fields == {"to", "text", "priority"}


def test_send_media_with_url_and_data_is_400(api: Api, working_session: Any) -> None:
    media = {
        "type": "image",
        "url": "https://example.com/a.png",
        "data": base64.b64encode(PNG).decode(),
        "mimetype": "image/png",
    }
    response = _send(api, working_session, {"to": TO, "media": media})
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "media"


def test_send_media_with_unknown_type_is_400(api: Api, working_session: Any) -> None:
    response = _send(api, working_session, {"to": TO, "media": {"type": "sticker", "url": "https://e.com/a.webp"}})
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "media.type"


def test_send_media_with_bad_base64_is_400(api: Api, working_session: Any) -> None:
    response = _send(
        api, working_session, {"to": TO, "media": {"type": "image", "data": "not base64!", "mimetype": "image/png"}}
    )
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "media.data"


def test_send_image_that_is_not_an_image_is_400(api: Api, working_session: Any) -> None:
    media = {"type": "image", "data": base64.b64encode(b"plain text").decode(), "mimetype": "image/png"}
    response = _send(api, working_session, {"to": TO, "media": media})
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "media.mimetype"


def test_send_on_session_not_working_is_409(api: Api, session: Any) -> None:
    response = _send(api, session, {"to": TO, "text": "too early"})
    assert response.status_code == 409
    assert _error(response)["code"] == "session_not_ready"
    assert _error(response)["details"]["status"] == "SCAN_QR_CODE"


def test_send_too_fast_is_429_with_retry_after(api: Api, tenant: Any, working_session: Any) -> None:
    from portal.extensions import db

    tenant.send_rate_per_minute = 1
    db.session.commit()
    assert _send(api, working_session, {"to": TO, "text": "one"}).status_code == 200
    response = _send(api, working_session, {"to": TO, "text": "two"})
    assert response.status_code == 429
    assert _error(response)["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


# ---- send media -----------------------------------------------------------------------------------------------


def test_send_image_by_url_reaches_waha(api: Api, sim: Any, working_session: Any) -> None:
    media = {"type": "image", "url": "https://example.com/menu.png", "caption": "Our menu"}
    response = _send(api, working_session, {"to": TO, "media": media})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["media"]["kind"] == "image"
    assert body["media"]["caption"] == "Our menu"
    sent = sim.sent_messages(working_session["externalSessionId"])[0]
    assert sent["kind"] == "image"
    assert sent["file"]["url"] == "https://example.com/menu.png"


@pytest.mark.parametrize(
    "kind,mimetype,content",
    [
        ("image", "image/png", PNG),
        ("document", "application/pdf", b"%PDF-1.4 test"),
        ("audio", "audio/ogg", b"OggS test"),
        ("video", "video/mp4", b"\x00\x00\x00\x18ftypmp42"),
    ],
)
def test_send_media_as_base64_reaches_waha(
    api: Api, sim: Any, working_session: Any, kind: str, mimetype: str, content: bytes
) -> None:
    media = {"type": kind, "data": base64.b64encode(content).decode(), "mimetype": mimetype, "filename": "f"}
    response = _send(api, working_session, {"to": TO, "media": media})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["media"]["kind"] == kind
    assert len(sim.sent_messages(working_session["externalSessionId"])) == 1


def test_send_uploaded_file_reaches_waha(api: Api, sim: Any, working_session: Any) -> None:
    response = api.post(
        f"/waha/sessions/{working_session['id']}/send/media",
        data={"file": (io.BytesIO(PNG), "photo.png", "image/png"), "to": TO, "caption": "Look"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["media"]["kind"] == "image"
    assert body["media"]["filename"] == "photo.png"
    assert body["text"] == "Look"
    sent = sim.sent_messages(working_session["externalSessionId"])[0]
    assert (sent["kind"], sent["body"]) == ("image", "Look")


def test_send_uploaded_pdf_goes_as_document(api: Api, working_session: Any) -> None:
    response = api.post(
        f"/waha/sessions/{working_session['id']}/send/media",
        data={"file": (io.BytesIO(b"%PDF-1.4"), "invoice.pdf", "application/pdf"), "to": TO},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["media"]["kind"] == "document"


def test_send_upload_without_file_is_400(api: Api, working_session: Any) -> None:
    response = api.post(
        f"/waha/sessions/{working_session['id']}/send/media", data={"to": TO}, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "file"


def test_send_upload_with_unknown_field_is_400(api: Api, working_session: Any) -> None:
    response = api.post(
        f"/waha/sessions/{working_session['id']}/send/media",
        data={"file": (io.BytesIO(PNG), "p.png", "image/png"), "to": TO, "colour": "red"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "colour"


def test_send_upload_with_bad_phone_is_400_on_to(api: Api, working_session: Any) -> None:
    response = api.post(
        f"/waha/sessions/{working_session['id']}/send/media",
        data={"file": (io.BytesIO(PNG), "p.png", "image/png"), "to": "123"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == "to"


def test_send_upload_over_size_limit_is_413(api: Api, app: Any, working_session: Any) -> None:
    big = b"\x00" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = api.post(
        f"/waha/sessions/{working_session['id']}/send/media",
        data={"file": (io.BytesIO(big), "big.pdf", "application/pdf"), "to": TO},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert _error(response)["code"] == "payload_too_large"


def test_send_with_inline_media_over_the_body_limit_is_413(api: Api, app: Any, working_session: Any) -> None:
    data = "A" * (app.config["MAX_CONTENT_LENGTH"] + 4)  # base64 text of a file larger than the limit
    media = {"type": "document", "data": data, "mimetype": "application/pdf"}
    response = api.post(f"/waha/sessions/{working_session['id']}/send", json={"to": TO, "media": media})
    assert response.status_code == 413
    assert _error(response)["code"] == "payload_too_large"


def test_send_upload_repeated_idempotency_key_sends_once(api: Api, sim: Any, working_session: Any) -> None:
    for _ in range(2):
        response = api.post(
            f"/waha/sessions/{working_session['id']}/send/media",
            data={"file": (io.BytesIO(PNG), "p.png", "image/png"), "to": TO},
            content_type="multipart/form-data",
            headers={"Idempotency-Key": "upload-1"},
        )
        assert response.status_code == 200, response.get_json()
    assert len(sim.sent_messages(working_session["externalSessionId"])) == 1


# ---- read -----------------------------------------------------------------------------------------------------


def test_get_message_answers_it(api: Api, working_session: Any) -> None:
    sent = _send(api, working_session, {"to": TO, "text": "Hello"}).get_json()
    response = api.get(f"/waha/messages/{sent['id']}")
    assert response.status_code == 200
    assert response.get_json()["text"] == "Hello"


@pytest.mark.parametrize("message_id", ["999999", "abc"])
def test_get_unknown_message_is_404(api: Api, message_id: str) -> None:
    response = api.get(f"/waha/messages/{message_id}")
    assert response.status_code == 404
    assert _error(response)["code"] == "message_not_found"


def test_session_messages_lists_sent_ones_newest_first(api: Api, working_session: Any) -> None:
    for text in ("one", "two", "three"):
        assert _send(api, working_session, {"to": TO, "text": text}).status_code == 200
    body = api.get(f"/waha/sessions/{working_session['id']}/messages").get_json()
    assert [m["text"] for m in body["data"]] == ["three", "two", "one"]
    assert body["nextCursor"] is None


def test_session_messages_pages_with_cursor(api: Api, tenant: Any, working_session: Any) -> None:
    from portal.extensions import db

    tenant.send_rate_per_minute = 600  # room for five sends in a burst
    db.session.commit()
    for n in range(5):
        assert _send(api, working_session, {"to": TO, "text": f"m{n}"}).status_code == 200
    seen: list[str] = []
    url = f"/waha/sessions/{working_session['id']}/messages?limit=2"
    cursor = None
    while True:
        body = api.get(url + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [m["text"] for m in body["data"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == ["m4", "m3", "m2", "m1", "m0"]


@pytest.mark.parametrize(
    "query,expected",
    [
        ("direction=out", ["bye", "hello"]),
        ("direction=in", []),
        ("q=BY", ["bye"]),
        ("chatId=491709999999@c.us", ["bye"]),
        ("status=ERROR", []),
    ],
)
def test_session_messages_filters(api: Api, working_session: Any, query: str, expected: list[str]) -> None:
    _send(api, working_session, {"to": TO, "text": "hello"})
    _send(api, working_session, {"to": "+491709999999", "text": "bye"})
    body = api.get(f"/waha/sessions/{working_session['id']}/messages?{query}").get_json()
    assert [m["text"] for m in body["data"]] == expected


def test_session_messages_filter_by_time_window(api: Api, working_session: Any) -> None:
    _send(api, working_session, {"to": TO, "text": "now"})
    future = (utcnow() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    past = (utcnow() - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    base = f"/waha/sessions/{working_session['id']}/messages"
    assert [m["text"] for m in api.get(f"{base}?since={past}").get_json()["data"]] == ["now"]
    assert api.get(f"{base}?since={future}").get_json()["data"] == []
    assert api.get(f"{base}?until={past}").get_json()["data"] == []


@pytest.mark.parametrize(
    "query,field",
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("direction=sideways", "direction"),
        ("since=yesterday", "since"),
        ("cursor=garbage", "cursor"),
        ("sessionId=x", "sessionId"),
    ],
)
def test_session_messages_bad_query_is_400(api: Api, working_session: Any, query: str, field: str) -> None:
    response = api.get(f"/waha/sessions/{working_session['id']}/messages?{query}")
    assert response.status_code == 400
    assert _error(response)["details"]["fields"][0]["field"] == field


def test_tenant_messages_span_sessions(api: Api, working_session: Any) -> None:
    _send(api, working_session, {"to": TO, "text": "from one"})
    create_session(api, "second")
    body = api.get("/waha/messages").get_json()
    assert [m["text"] for m in body["data"]] == ["from one"]


def test_tenant_messages_filter_by_session(api: Api, working_session: Any) -> None:
    _send(api, working_session, {"to": TO, "text": "hi"})
    other = create_session(api, "second")
    assert api.get(f"/waha/messages?sessionId={other['id']}").get_json()["data"] == []
    assert len(api.get(f"/waha/messages?sessionId={working_session['id']}").get_json()["data"]) == 1


def test_tenant_messages_exclude_other_tenants(api: Api, other_api: Api, working_session: Any) -> None:
    _send(api, working_session, {"to": TO, "text": "private"})
    assert other_api.get("/waha/messages").get_json()["data"] == []


# ---- media download -------------------------------------------------------------------------------------------


def test_media_of_sent_message_without_stored_file_is_404(api: Api, working_session: Any) -> None:
    media = {"type": "image", "url": "https://example.com/menu.png"}
    sent = _send(api, working_session, {"to": TO, "media": media}).get_json()
    assert sent["media"]["url"] is None
    response = api.get(f"/waha/messages/{sent['id']}/media")
    assert response.status_code == 404
    assert _error(response)["code"] == "media_not_found"


def test_media_of_unknown_message_is_404(api: Api) -> None:
    response = api.get("/waha/messages/424242/media")
    assert response.status_code == 404
    assert _error(response)["code"] == "message_not_found"
