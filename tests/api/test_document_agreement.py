"""The OpenAPI document and the server agree on which requests are valid, at the edges a fuzzer found.

Each case is judged twice: by the document (JSON Schema of the parameters or the body) and by the server (400
validation_error or not). The two must give the same verdict; the expected verdict is written down as well, so a
rule that both sides drop together is noticed too. Sends go to a WORKING session on the simulator, so the rules
the messages service checks after the request's shape are judged as well.
"""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import phonenumbers
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from tests.helpers import Api, openapi_document

TO = "+491701234567"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63646060f80f"
    "0002870180eb47ba920000000049454e44ae426082"
)
INLINE = {"type": "image", "data": base64.b64encode(PNG).decode(), "mimetype": "image/png"}
AUDIO = {"type": "audio", "url": "https://example.com/voice.ogg"}


# The document's own formats, as it defines them: a phone number valid in its country's numbering plan, written
# in international form (+, 00 or the bare country code), or a WhatsApp chat id.
FORMATS = FormatChecker()


@FORMATS.checks("phone")
def _phone(value: object) -> bool:
    if not isinstance(value, str):
        return True
    raw = value.strip()
    raw = "+" + raw[2:] if raw.startswith("00") else raw if raw.startswith("+") else "+" + raw
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(raw, None))
    except phonenumbers.NumberParseException:
        return False


@FORMATS.checks("whatsapp-recipient")
def _recipient(value: object) -> bool:
    return not isinstance(value, str) or "@" in value or _phone(value)


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(dict(schema, components=openapi_document()["components"]), format_checker=FORMATS)


def _query_is_valid(path: str, query: dict[str, str]) -> bool:
    """The document's verdict on a query string, read as a server reads text (digits as an integer)."""
    params = {
        p["name"]: p for p in openapi_document()["paths"][path]["get"].get("parameters", []) if p["in"] == "query"
    }
    for name, value in query.items():
        param = params.get(name)
        if param is None:
            return False
        if value == "" and param.get("allowEmptyValue"):
            continue
        types = {b.get("type") for b in param["schema"].get("anyOf", [param["schema"]])}
        wire: Any = int(value) if "integer" in types and re.fullmatch(r"[+-]?[0-9]+", value) else value
        if not _validator(param["schema"]).is_valid(wire):
            return False
    return True


def _body_is_valid(path: str, media: str, body: dict[str, Any]) -> bool:
    operation = openapi_document()["paths"][path]["post"]
    return _validator(operation["requestBody"]["content"][media]["schema"]).is_valid(body)


def _refused(response: Any) -> bool:
    return response.status_code == 400 and response.get_json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "path, query, valid",
    [
        ("/waha/messages", {"status": ""}, True),  # empty counts as left out
        ("/waha/messages", {"cursor": "", "since": "", "limit": ""}, True),
        ("/waha/messages", {"": ""}, False),  # ... but an unknown parameter is refused, empty or not
        ("/waha/sessions", {"colour": ""}, False),
        ("/waha/webhooks/deliveries", {"limit": "10"}, True),
        ("/waha/webhooks/deliveries", {"limit": "+7"}, True),
        ("/waha/webhooks/deliveries", {"limit": "1_0"}, False),  # Python would read these as numbers
        ("/waha/webhooks/deliveries", {"limit": " 5"}, False),
        ("/waha/webhooks/deliveries", {"limit": "5.0"}, False),
        ("/waha/webhooks/deliveries", {"limit": "٥"}, False),
        ("/waha/webhooks/deliveries", {"endpointId": "0"}, False),
        ("/waha/messages", {"since": "2024-05-01T12:00:00Z"}, True),
        ("/waha/messages", {"until": "2024-05-01t12:00:00.123456789+05:30"}, True),
        ("/waha/messages", {"since": "2024-05-01"}, False),  # RFC 3339: a time and an offset
        ("/waha/messages", {"since": "2024-05-01T12:00:00"}, False),
        ("/waha/messages", {"since": "1700000000"}, False),
        ("/waha/messages", {"since": "2024-05-01 12:00:00Z"}, False),
        ("/waha/messages", {"q": "  ", "chatId": " x "}, True),
    ],
)
def test_query_rules(api: Api, path: str, query: dict[str, str], valid: bool) -> None:
    assert _query_is_valid(path, query) is valid
    response = api.get(path, query_string=query)
    assert _refused(response) is not valid, response.get_json()


@pytest.mark.parametrize(
    "body, valid",
    [
        ({"to": TO, "text": "hello"}, True),
        ({"to": TO, "text": " hello "}, True),
        ({"to": TO, "text": "   "}, False),
        ({"to": TO, "text": "\u3000\u00a0\x1c"}, False),  # whitespace as the server strips it
        ({"to": TO, "text": "a\u0000b"}, False),
        ({"to": TO, "text": "x" * 4096}, True),
        ({"to": TO, "text": "x" * 4096 + " "}, False),  # lengths count what was sent
        ({"to": "+49 170 1234567", "text": "hi"}, True),
        ({"to": "(49) 170-123.4567", "text": "hi"}, True),
        ({"to": "(+49) 170 1234567", "text": "hi"}, False),  # not an international form libphonenumber reads
        ({"to": "+49 170 1234567 ext. 5", "text": "hi"}, False),
        ({"to": "+49 170 12", "text": "hi"}, False),  # no such number in Germany
        ({"to": "0049\u00a0170\u00a01234567", "text": "hi"}, True),
        ({"to": "+٤٩١٧٠١٢٣٤٥٦٧", "text": "hi"}, False),  # digits are ASCII digits
        ({"to": " 491701234567@c.us ", "text": "hi"}, True),
        ({"to": "someone@example.com", "text": "hi"}, False),
        ({"to": TO, "text": "hi", "replyTo": " "}, False),
        ({"to": TO, "media": INLINE}, True),
        ({"to": TO, "media": {**INLINE, "mimetype": ""}}, False),  # data needs a mimetype ...
        ({"to": TO, "media": {**INLINE, "mimetype": "  "}}, False),  # ... that is not blank
        ({"to": TO, "media": {**INLINE, "mimetype": "png"}}, False),
        ({"to": TO, "media": {**INLINE, "mimetype": " IMAGE/png ; q=1"}}, True),
        ({"to": TO, "media": {**INLINE, "mimetype": "video/mp4"}}, False),  # not an image type
        ({"to": TO, "media": {**INLINE, "type": "document", "mimetype": "application/pdf"}}, True),
        ({"to": TO, "media": {**INLINE, "type": "document", "mimetype": "application/x-msdownload"}}, False),
        ({"to": TO, "media": {**INLINE, "data": ""}}, False),
        ({"to": TO, "media": {**INLINE, "data": "aGk"}}, False),
        ({"to": TO, "media": {**INLINE, "filename": "a/b.png"}}, False),
        ({"to": TO, "media": {**INLINE, "caption": "x" * 1024}}, True),
        ({"to": TO, "media": {**INLINE, "caption": "x" * 1025}}, False),
        ({"to": TO, "text": "x" * 1024, "media": INLINE}, True),  # the text is the caption ...
        ({"to": TO, "text": "x" * 1025, "media": INLINE}, False),  # ... so it is as short as one
        ({"to": TO, "text": "hi", "media": {**INLINE, "caption": "ho"}}, False),  # and given once
        ({"to": TO, "text": "hi", "media": {**INLINE, "caption": " "}}, True),
        ({"to": TO, "media": {**INLINE, "data": base64.b64encode(b"GIF89a" + PNG).decode()}}, False),  # not a PNG
        ({"to": TO, "media": {**INLINE, "mimetype": "image/gif", "data": base64.b64encode(b"GIF89a").decode()}}, True),
        ({"to": TO, "media": {"type": "image", "url": "https://example.com/menu"}}, False),  # no type to be had
        ({"to": TO, "media": {"type": "image", "url": "https://example.com/menu", "mimetype": None}}, False),
        ({"to": TO, "media": {"type": "image", "url": "https://example.com/m", "filename": None}}, False),
        ({"to": TO, "media": {"type": "image", "url": "https://example.com/menu.PNG?size=2"}}, True),
        ({"to": TO, "media": {"type": "image", "url": "https://example.com/menu.mp4"}}, False),  # a video's type
        ({"to": TO, "media": {"type": "image", "url": "https://example.com/m", "filename": "menu.jpg"}}, True),
        ({"to": TO, "media": {"type": "image", "url": "https://example.com/m.jpg", "filename": "menu"}}, False),
        ({"to": TO, "media": {"type": "document", "url": "https://example.com/report"}}, True),  # octet-stream
        ({"to": TO, "media": AUDIO}, True),
        ({"to": TO, "media": {**AUDIO, "caption": "listen"}}, False),  # a voice message has no caption
        ({"to": TO, "media": {**AUDIO, "caption": "  "}}, True),
        ({"to": TO, "text": "listen", "media": AUDIO}, False),
        ({"to": TO, "text": "hi", "metadata": {"order": "1234", "n": 5, "x": 1.5, "vip": True}}, True),
        ({"to": TO, "text": "hi", "metadata": {"order": {"id": 1}}}, False),
        ({"to": TO, "text": "hi", "metadata": {"order": None}}, False),
        ({"to": TO, "text": "hi", "metadata": {"order": "x" * 501}}, False),
        ({"to": TO, "text": "hi", "metadata": {f"k{i}": "v" for i in range(21)}}, False),
    ],
)
def test_send_body_rules(api: Api, working_session: dict[str, Any], body: dict[str, Any], valid: bool) -> None:
    assert _body_is_valid("/waha/sessions/{session_id}/send", "application/json", body) is valid
    response = api.post(f"/waha/sessions/{working_session['id']}/send", json=body)
    assert _refused(response) is not valid, response.get_json()
    if valid:
        assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize(
    "config, valid",
    [
        ({"noweb": {"markOnline": True, "store": {"enabled": True, "fullSync": False}}}, True),
        ({"noweb": {"store": {"enabled": True, "fullSync": False}}}, False),  # WAHA requires markOnline
        ({"noweb": 5}, False),
        ({"gows": {"storage": {"messages": None, "chats": False}}, "debug": None}, True),
        ({"ignore": {"groups": True, "stories": True}}, False),
        ({"proxy": {"server": "proxy.example.com:3128", "username": "u", "password": " p "}}, True),
        ({"proxy": {"server": "proxy.example.com"}}, False),  # the port is required
        ({"proxy": {"server": "socks5://93.184.215.14:1080/"}}, True),
        ({"proxy": {"server": "http://proxy.example.com:3128/path"}}, False),
        ({"proxy": {"host": "proxy.example.com:3128"}}, False),
        ({"metadata": {"team": "support"}}, True),
        ({"metadata": {"portal.tenant_id": "7"}}, False),
        ({"metadata": {"team": 5}}, False),
        ({"webhooks": []}, False),
    ],
)
def test_session_config_rules(api: Api, config: dict[str, Any], valid: bool) -> None:
    body = {"sessionName": "support", "config": config}
    assert _body_is_valid("/waha/sessions", "application/json", body) is valid
    response = api.post("/waha/sessions", json=body)
    assert _refused(response) is not valid, response.get_json()
    if valid:
        assert response.status_code == 201


@pytest.mark.parametrize(
    "name, valid",
    [(" support ", True), ("   ", False), ("\u2003", False), ("s" * 100, True), ("s" * 100 + " ", False)],
)
def test_session_name_rules(api: Api, name: str, valid: bool) -> None:
    body = {"sessionName": name}
    assert _body_is_valid("/waha/sessions", "application/json", body) is valid
    response = api.post("/waha/sessions", json=body)
    assert _refused(response) is not valid, response.get_json()


@pytest.mark.parametrize(
    "form, content, valid",
    [
        ({"to": TO}, b"%PDF-1.4", True),
        ({"to": TO, "type": "", "caption": "", "replyTo": ""}, b"%PDF-1.4", True),  # empty counts as left out
        ({"to": TO, "type": " document"}, b"%PDF-1.4", False),
        ({"to": TO, "colour": ""}, b"%PDF-1.4", False),
        ({"to": TO}, b"", False),  # an empty file
    ],
)
def test_upload_form_rules(
    api: Api, working_session: dict[str, Any], form: dict[str, str], content: bytes, valid: bool
) -> None:
    # The document describes the file as text of its bytes; jsonschema reads a string's length.
    document_view = {**form, "file": content.decode("latin-1")}
    assert _body_is_valid("/waha/sessions/{session_id}/send/media", "multipart/form-data", document_view) is valid
    data: dict[str, Any] = {**form, "file": (io.BytesIO(content), "invoice.pdf", "application/pdf")}
    response = api.post(
        f"/waha/sessions/{working_session['id']}/send/media", data=data, content_type="multipart/form-data"
    )
    assert _refused(response) is not valid, response.get_json()


@pytest.mark.parametrize(
    "filename, content, part_type, kind, mimetype",
    [
        ("report", b"%PDF-1.4", "*/*", "document", "application/octet-stream"),
        ("photo.png", PNG, "image/*", "image", "image/png"),
        ("photo.png", PNG, "image/png", "image", "image/png"),
    ],
)
def test_upload_typed_by_a_media_range_takes_its_type_from_its_name(
    api: Api, working_session: dict[str, Any], filename: str, content: bytes, part_type: str, kind: str, mimetype: str
) -> None:
    # The document lets the file part carry any Content-Type (*/*); a range names no type, so the name does.
    data = {"to": TO, "file": (io.BytesIO(content), filename, part_type)}
    response = api.post(
        f"/waha/sessions/{working_session['id']}/send/media", data=data, content_type="multipart/form-data"
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["media"]["kind"] == kind
    assert response.get_json()["media"]["mimetype"] == mimetype
