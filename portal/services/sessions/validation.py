"""Checking what a tenant asks for when creating a session: name, engine, webhook URL and events, config; and the
WAHA session name a new session gets."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from portal.i18n import N_, N_f
from portal.models import ENGINES
from portal.services import destinations
from portal.services.errors import Invalid

NAME_MAX = 100
EXTERNAL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,54}$")

# WAHA's event names (CONTRACT 8.4); "*" means all of them except state.change and engine.event.
WAHA_EVENTS = frozenset(
    {
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
    }
)
DEFAULT_WEBHOOK_EVENTS = ["message", "session.status"]
# Session config keys a tenant may set; webhooks are the portal's own (the tenant's URL is served by forwarding).
TENANT_CONFIG_KEYS = frozenset({"metadata", "proxy", "debug", "ignore", "client", "noweb", "webjs", "gows"})
METADATA_MAX_ENTRIES = 20
METADATA_PREFIX = "portal."


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise Invalid.field("name", N_("Name must not be empty."))
    name = " ".join(name.split())
    if len(name) > NAME_MAX:
        raise Invalid.field("name", N_f("Name must be at most %(NAME_MAX)s characters.", NAME_MAX=NAME_MAX))
    return name


def _clean_engine(engine: Any) -> str | None:
    if engine is None or engine == "":
        return None
    if not isinstance(engine, str) or engine.upper() not in ENGINES:
        raise Invalid.field("engine", N_f("Engine must be one of %(value)s.", value=", ".join(ENGINES)))
    return engine.upper()


def _clean_webhook_url(url: Any) -> str | None:
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        raise Invalid.field("webhook_url", N_("Webhook URL must be an http:// or https:// URL."))
    return destinations.clean_url(url, "webhook_url", "webhook URL")


def _clean_events(events: Any, url: str | None) -> list[str]:
    if events is None:
        return list(DEFAULT_WEBHOOK_EVENTS) if url else []
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise Invalid.field("webhook_events", N_("Webhook events must be a list of event names."))
    unknown = [e for e in events if e != "*" and e not in WAHA_EVENTS]
    if unknown:
        raise Invalid.field("webhook_events", N_f("Unknown event names: %(value)s.", value=", ".join(unknown)))
    return list(dict.fromkeys(events))  # de-duplicated, order kept


def _clean_config(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise Invalid.field("config", N_("Config must be an object."))
    unknown = sorted(set(config) - TENANT_CONFIG_KEYS)
    if unknown:
        hint = " (use webhook_url for webhooks)" if "webhooks" in unknown else ""
        raise Invalid.field(
            "config", N_f("Unknown config keys: %(value)s%(hint)s.", value=", ".join(unknown), hint=hint)
        )
    metadata = config.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise Invalid.field("config.metadata", N_("Metadata must map strings to strings."))
        if len(metadata) > METADATA_MAX_ENTRIES:
            raise Invalid.field(
                "config.metadata",
                N_f(
                    "Metadata may have at most %(METADATA_MAX_ENTRIES)s entries.",
                    METADATA_MAX_ENTRIES=METADATA_MAX_ENTRIES,
                ),
            )
        if any(k.startswith(METADATA_PREFIX) for k in metadata):
            raise Invalid.field(
                "config.metadata",
                N_f("Metadata keys starting with '%(METADATA_PREFIX)s' are reserved.", METADATA_PREFIX=METADATA_PREFIX),
            )
    if config.get("proxy") is not None:
        # WAHA connects to WhatsApp through this server: it passes the same destination policy as every URL.
        config = {**config, "proxy": destinations.clean_proxy(config["proxy"])}
    try:
        json.dumps(config)
    except (TypeError, ValueError):
        raise Invalid.field("config", N_("Config must be plain JSON.")) from None
    return config


def _slug(name: str, length: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:length].strip("-") or "s"


def external_name_for(tenant_id: int, name: str) -> str:
    """A WAHA session name for a new session: tenant id, the name as a slug and a random suffix (<= 54 chars)."""
    prefix = f"t{tenant_id}_"
    suffix = "_" + secrets.token_hex(3)
    external = prefix + _slug(name, 54 - len(prefix) - len(suffix)) + suffix
    assert EXTERNAL_NAME_RE.match(external), external
    return external
