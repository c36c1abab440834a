"""Validation of session create/update bodies, the way WAHA's validation pipe does it.

Unknown fields are stripped silently (whitelist mode); every problem becomes one
string in the 400 `message` array.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

from .errors import validation

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]*$")
NAME_MAX = 54
NAME_MESSAGE = (
    "Session name can only contain alphanumeric characters, hyphens, and underscores (a-z, A-Z, 0-9, -, _) or be empty"
)

EVENTS = (
    "session.status",
    "message",
    "message.any",
    "message.reaction",
    "message.ack",
    "message.ack.group",
    "message.waiting",
    "message.revoked",
    "message.edited",
    "chat.archive",
    "group.v2.join",
    "group.v2.leave",
    "group.v2.update",
    "group.v2.participants",
    "presence.update",
    "poll.vote",
    "poll.vote.failed",
    "call.received",
    "call.accepted",
    "call.rejected",
    "label.upsert",
    "label.deleted",
    "label.chat.added",
    "label.chat.deleted",
    "event.response",
    "event.response.failed",
    "engine.event",
    "state.change",
    "group.join",
    "group.leave",
)
# "*" means every event except these two.
STAR_EXCLUDED = ("state.change", "engine.event")

POLICIES = ("linear", "exponential", "constant")
CONFIG_KEYS = ("metadata", "proxy", "debug", "ignore", "client", "noweb", "webjs", "gows", "webhooks")
WEBHOOK_KEYS = ("url", "events", "hmac", "retries", "customHeaders")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_url(value) -> bool:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        return False
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


def _nested(path: str) -> str:
    return f"nested property {path} must be either object or array"


def _clean_webhook(raw, path: str, errors: list[str]) -> dict | None:
    if not isinstance(raw, dict):
        errors.append(_nested(path))
        return None
    hook = {k: raw[k] for k in WEBHOOK_KEYS if k in raw}
    if not _is_url(hook.get("url")):
        errors.append(f"{path}.url must be a URL address")
    events = hook.get("events")
    if not isinstance(events, list):
        errors.append(f"{path}.events must be an array")
    elif any(e != "*" and e not in EVENTS for e in events):
        allowed = ", ".join(("*",) + EVENTS)
        errors.append(f"each value in {path}.events must be one of the following values: {allowed}")
    if hook.get("hmac") is not None:
        hmac = hook["hmac"]
        if not isinstance(hmac, dict):
            errors.append(_nested(f"{path}.hmac"))
        else:
            hook["hmac"] = {k: hmac[k] for k in ("key",) if k in hmac}
            if "key" in hmac and hmac["key"] is not None and not isinstance(hmac["key"], str):
                errors.append(f"{path}.hmac.key must be a string")
    if hook.get("retries") is not None:
        retries = hook["retries"]
        if not isinstance(retries, dict):
            errors.append(_nested(f"{path}.retries"))
        else:
            hook["retries"] = {k: retries[k] for k in ("delaySeconds", "attempts", "policy") if k in retries}
            if retries.get("policy") is not None and retries["policy"] not in POLICIES:
                errors.append(f"{path}.retries.policy must be one of the following values: {', '.join(POLICIES)}")
            for key in ("delaySeconds", "attempts"):
                if retries.get(key) is not None and (not _is_number(retries[key]) or retries[key] < 0):
                    errors.append(f"{path}.retries.{key} must be a number conforming to the specified constraints")
    if hook.get("customHeaders") is not None:
        headers = hook["customHeaders"]
        if not isinstance(headers, list):
            errors.append(f"{path}.customHeaders must be an array")
        else:
            cleaned = []
            for i, header in enumerate(headers):
                hpath = f"{path}.customHeaders.{i}"
                if not isinstance(header, dict):
                    errors.append(_nested(hpath))
                    continue
                for key in ("name", "value"):
                    if not isinstance(header.get(key), str):
                        errors.append(f"{hpath}.{key} must be a string")
                cleaned.append({k: header[k] for k in ("name", "value") if k in header})
            hook["customHeaders"] = cleaned
    return hook


def clean_config(raw, errors: list[str]) -> dict | None:
    """Validate and strip a session `config` object; None stays None."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.append(_nested("config"))
        return None
    config = {k: raw[k] for k in CONFIG_KEYS if k in raw}
    metadata = config.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        errors.append("config.metadata accepts string key-value pairs only")
    if config.get("debug") is not None and not isinstance(config["debug"], bool):
        errors.append("config.debug must be a boolean value")
    for key in ("proxy", "ignore", "client", "noweb", "webjs", "gows"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            errors.append(_nested(f"config.{key}"))
    webhooks = config.get("webhooks")
    if webhooks is not None:
        if not isinstance(webhooks, list):
            errors.append("config.webhooks must be an array")
        else:
            config["webhooks"] = [
                hook
                for i, raw_hook in enumerate(webhooks)
                if (hook := _clean_webhook(raw_hook, f"config.webhooks.{i}", errors)) is not None
            ]
    return config


def _clean_apps(raw, errors: list[str]):
    if raw is not None and not isinstance(raw, list):
        errors.append("apps must be an array")
        return None
    return raw


def clean_create(body) -> dict:
    """Validate a POST /api/sessions body; returns {name?, start?, config, apps} or raises 400."""
    if not isinstance(body, dict):
        body = {}
    errors: list[str] = []
    out: dict = {}
    if "name" in body and body["name"] is not None:
        name = body["name"]
        if not isinstance(name, str):
            errors.append("name must be a string")
        else:
            if len(name) > NAME_MAX:
                errors.append(f"name must be shorter than or equal to {NAME_MAX} characters")
            if not NAME_RE.match(name):
                errors.append(NAME_MESSAGE)
            out["name"] = name
    if "start" in body and body["start"] is not None:
        if not isinstance(body["start"], bool):
            errors.append("start must be a boolean value")
        out["start"] = body["start"]
    out["config"] = clean_config(body.get("config"), errors)
    out["apps"] = _clean_apps(body.get("apps"), errors)
    if errors:
        raise validation(errors)
    return out


def clean_update(body) -> dict:
    """Validate a PUT /api/sessions/{s} body: {config, apps}."""
    if not isinstance(body, dict):
        body = {}
    errors: list[str] = []
    out = {"config": clean_config(body.get("config"), errors), "apps": _clean_apps(body.get("apps"), errors)}
    if errors:
        raise validation(errors)
    return out


def accepts(events, event: str) -> bool:
    """Whether a webhook subscribed to `events` gets `event`."""
    if not events:
        return False
    if event in events:
        return True
    return "*" in events and event not in STAR_EXCLUDED
