"""Engine-specific JSON shapes: send answers, message payloads and acks (CONTRACT 7.3, 8.5).

A message is held as a plain record dict: id, waId, chatId, kind (text/image/file/voice/video),
body, file, media, timestamp, replyTo.
"""

from __future__ import annotations

import copy
import mimetypes
import re
import time

ACK_NAMES = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
# File extensions as the npm mime-types package names them (WAHA uses it for media.url).
EXTENSIONS = {
    "image/jpeg": "jpeg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "audio/ogg": "oga",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "video/mp4": "mp4",
    "application/pdf": "pdf",
    "text/plain": "txt",
}
WEBJS_TYPES = {"text": "chat", "image": "image", "file": "document", "voice": "ptt", "video": "video"}
PROTO_KEYS = {"image": "imageMessage", "file": "documentMessage", "voice": "audioMessage", "video": "videoMessage"}


def ack_name(ack) -> str:
    return ACK_NAMES.get(ack, "UNKNOWN")


def extension_for(mimetype: str) -> str:
    """File extension used in media.url for a mimetype (parameters ignored)."""
    base = (mimetype or "").split(";")[0].strip().lower()
    if base in EXTENSIONS:
        return EXTENSIONS[base]
    guessed = mimetypes.guess_extension(base) if base else None
    return guessed.lstrip(".") if guessed else "bin"


def normalize_chat(value) -> str:
    """chatId as WAHA uses it: `<digits>@c.us` unless a server part is given."""
    chat = str(value).strip()
    if "@" in chat:
        return chat
    return re.sub(r"\D", "", chat) + "@c.us"


def to_jid(chat: str) -> str:
    """The @s.whatsapp.net form engines use internally."""
    return chat.replace("@c.us", "@s.whatsapp.net")


def number_exists(digits: str) -> bool:
    """Plausible numbers exist; implausible ones, or ones with a run of 7 zeros, do not.

    That makes e.g. 000123456789 and 4900000000000 (the fixture's example) unknown.
    """
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        return False
    return not digits.startswith("0") and "0000000" not in digits


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def proto(record: dict) -> dict:
    """The WhatsApp protobuf-like message GOWS/NOWEB carry."""
    kind, text, info = record["kind"], record["body"], record.get("file") or {}
    if kind == "text":
        return {"conversation": text}
    inner = {"mimetype": info.get("mimetype")}
    if kind == "file":
        inner["fileName"] = info.get("filename")
    if kind == "voice":
        inner["PTT"] = True
    if text:
        inner["caption"] = text
    return {PROTO_KEYS[kind]: inner}


def webjs_id(record: dict) -> dict:
    return {
        "fromMe": record["id"].startswith("true_"),
        "remote": record["chatId"],
        "id": record["waId"],
        "_serialized": record["id"],
    }


def raw_data(engine: str, record: dict, own_id: str | None, push_name: str = "") -> dict:
    """`_data` of a message event, roughly as each engine fills it (clients must not parse it)."""
    from_me = record["id"].startswith("true_")
    if engine == "WEBJS":
        return {
            "id": webjs_id(record),
            "type": WEBJS_TYPES[record["kind"]],
            "t": record["timestamp"],
            "notifyName": push_name,
            "from": own_id if from_me else record["chatId"],
            "to": record["chatId"] if from_me else own_id,
            "body": record["body"],
        }
    if engine == "NOWEB":
        return {
            "key": {"remoteJid": to_jid(record["chatId"]), "fromMe": from_me, "id": record["waId"]},
            "message": proto(record),
            "messageTimestamp": record["timestamp"],
            "pushName": push_name,
        }
    jid = to_jid(record["chatId"])
    return {
        "Info": {
            "Chat": jid,
            "Sender": jid,
            "IsFromMe": from_me,
            "IsGroup": record["chatId"].endswith("@g.us"),
            "ID": record["waId"],
            "Type": "text" if record["kind"] == "text" else "media",
            "PushName": push_name,
            "Timestamp": _iso(record["timestamp"]),
        },
        "Message": proto(record),
    }


def send_response(engine: str, record: dict, own_id: str | None) -> dict:
    """The body of a send answer (CONTRACT 7.3)."""
    if engine == "GOWS":
        return {"id": record["id"], "_data": proto(record)}
    if engine == "NOWEB":
        message = proto(record)
        if record["kind"] == "text":
            message = {"extendedTextMessage": {"text": record["body"]}}
        return {
            "key": {"remoteJid": to_jid(record["chatId"]), "fromMe": True, "id": record["waId"]},
            "message": message,
            "messageTimestamp": str(record["timestamp"]),
            "status": "PENDING",
        }
    wtype = WEBJS_TYPES[record["kind"]]
    ident = webjs_id(record)
    return {
        "_data": {"id": dict(ident), "type": wtype, "t": record["timestamp"], "ack": 0},
        "id": ident,
        "ack": 0,
        "hasMedia": record["kind"] != "text",
        "body": record["body"],
        "type": wtype,
        "timestamp": record["timestamp"],
        "from": own_id,
        "to": record["chatId"],
        "fromMe": True,
        "hasQuotedMsg": bool(record.get("replyTo")),
        "vCards": [],
        "mentionedIds": [],
    }


def head(engine: str, record: dict, own_id: str | None) -> dict:
    """The fields every message-like payload starts with: id, timestamp, from, fromMe, source, to, participant.

    For a DM, `from` is the other person; own messages on WEBJS put this account in `from` and the chat in
    `to`, GOWS/NOWEB keep the chat in `from` and `to` null.
    """
    from_me = record["id"].startswith("true_")
    webjs = engine == "WEBJS"
    if from_me:
        sender, receiver = (own_id, record["chatId"]) if webjs else (record["chatId"], None)
    else:
        sender, receiver = record["chatId"], (own_id if webjs else None)
    return {
        "id": record["id"],
        "timestamp": record["timestamp"],
        "from": sender,
        "fromMe": from_me,
        "source": "api" if from_me else "app",
        "to": receiver,
        "participant": None,
    }


def message_payload(engine: str, record: dict, own_id: str | None, ack: int, push_name: str = "") -> dict:
    """WAMessage of a `message` / `message.any` event (see `head` for from/to)."""
    return {
        **head(engine, record, own_id),
        "body": record["body"],
        "hasMedia": record.get("media") is not None,
        "media": copy.deepcopy(record.get("media")),
        "ack": ack,
        "ackName": ack_name(ack),
        "location": None,
        "vCards": [],
        "replyTo": None,
        "_data": raw_data(engine, record, own_id, push_name),
    }


def ack_payload(engine: str, record: dict, own_id: str | None, ack: int) -> dict:
    """`message.ack` payload: a full WAMessage on WEBJS, the minimal receipt shape elsewhere."""
    from_me = record["id"].startswith("true_")
    if engine == "WEBJS":
        return message_payload(engine, record, own_id, ack)
    jid = to_jid(record["chatId"])
    return {
        "id": record["id"],
        "from": record["chatId"],
        "to": None,
        "participant": None,
        "fromMe": from_me,
        "ack": ack,
        "ackName": ack_name(ack),
        "_data": {
            "Chat": jid,
            "Sender": jid,
            "IsFromMe": not from_me,
            "IsGroup": record["chatId"].endswith("@g.us"),
            "MessageIDs": [record["waId"]],
            "Type": {2: "", 3: "read", 4: "played"}.get(ack, "sender"),
            "Timestamp": _iso(time.time()),
        },
    }


# ---- chats, contacts and actions on messages (CONTRACT 8.5) -------------------------------------------------


def protocol_record(chat: str, wa_id: str, from_me: bool, body: str = "") -> dict:
    """A message WhatsApp sends to carry an action (reaction, edit, revoke): it has an id of its own."""
    return {
        "id": f"{'true' if from_me else 'false'}_{chat}_{wa_id}",
        "waId": wa_id,
        "chatId": chat,
        "kind": "text",
        "body": body,
        "file": None,
        "media": None,
        "timestamp": int(time.time()),
    }


def action_response(engine: str, record: dict, own_id: str | None, data: dict) -> dict | None:
    """What a reaction, edit or revoke call answers: GOWS `{id, _data}`, NOWEB the Baileys record, WEBJS nothing
    (its engine returns no value, so Nest sends an empty body)."""
    if engine == "GOWS":
        return {"id": record["id"], "_data": data}
    if engine == "NOWEB":
        return {
            "key": {"remoteJid": to_jid(record["chatId"]), "fromMe": True, "id": record["waId"]},
            "message": data,
            "messageTimestamp": str(record["timestamp"]),
            "status": "PENDING",
        }
    return None


def reaction_payload(engine: str, record: dict, own_id: str | None, text: str, target_id: str) -> dict:
    """`message.reaction`: the reaction message's head plus `reaction: {text, messageId}` ("" = removed)."""
    return {**head(engine, record, own_id), "reaction": {"text": text, "messageId": target_id}}


def edited_payload(engine: str, record: dict, own_id: str | None, target: dict) -> dict:
    """`message.edited`: a WAMessage of the edit with the new `body` and `editedMessageId` (the short WhatsApp
    id of the message that changed, as GOWS sends it)."""
    payload = message_payload(engine, record, own_id, ack=record.get("ack", 1))
    payload["editedMessageId"] = target["waId"]
    payload["_data"] = {"protocolMessage": {"type": "MESSAGE_EDIT", "key": {"ID": target["waId"]}}}
    return payload


def revoked_payload(engine: str, record: dict, own_id: str | None, target: dict, before_ack: int) -> dict:
    """`message.revoked`: `{after, before, revokedMessageId, _data}`. GOWS knows only the revoke message
    (`before` null); the browser engines also give the message as it was."""
    before = None if engine == "GOWS" else message_payload(engine, target, own_id, ack=before_ack)
    return {
        "after": message_payload(engine, record, own_id, ack=record.get("ack", 1)),
        "before": before,
        "revokedMessageId": target["waId"],
        "_data": {"protocolMessage": {"type": "REVOKE", "key": {"ID": target["waId"]}}},
    }


PRESENCES = ("offline", "online", "typing", "recording", "paused")


def presence_payload(chat: str, participant: str, state: str) -> dict:
    """`presence.update` for one chat: who is typing, recording, paused, online or offline."""
    entry: dict = {"participant": participant, "lastKnownPresence": state}
    entry["lastSeen"] = int(time.time()) if state == "offline" else None
    return {"id": chat, "presences": [entry]}


def contact(engine: str, chat: str, info: dict) -> dict:
    """A contact as /api/contacts answers it: GOWS and NOWEB `{id, name, pushname}`; WEBJS the whatsapp-web.js
    contact, flags included."""
    body = {"id": chat, "name": info.get("name"), "pushname": info.get("pushname")}
    if engine != "WEBJS":
        return body
    return {
        **body,
        "number": chat.split("@")[0] if chat.endswith("@c.us") else None,
        "shortName": (info.get("name") or "").split(" ")[0] or None,
        "isMe": False,
        "isUser": chat.endswith("@c.us"),
        "isGroup": chat.endswith("@g.us"),
        "isWAContact": True,
        "isMyContact": bool(info.get("name")),
        "isBusiness": False,
        "isBlocked": False,
    }
