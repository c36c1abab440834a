"""Shared set-up of the event benchmarks (ingest, worker throughput, sync): a fresh database, a tenant, sessions.

Uses BENCH_EVENTS_DATABASE_URL (default: database portal_bench_events, created and reset here) and Redis db 11
(BENCH_EVENTS_REDIS_URL), so a benchmark never touches the test or development data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_EVENTS_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/portal_bench_events")
REDIS_URL = os.environ.get("BENCH_EVENTS_REDIS_URL", "redis://127.0.0.1:6379/11")


def environ(**overrides: str) -> dict[str, str]:
    """The portal's environment for a benchmark process."""
    from portal.config import environ_for_tests

    # development, not testing: the portal behaves as it does in production (no test shortcuts)
    env = environ_for_tests(DATABASE_URL=DB_URL, REDIS_URL=REDIS_URL, LOG_LEVEL="ERROR", PORTAL_ENV="development")
    env.update(overrides)
    return env


def reset_database() -> None:
    """Create the benchmark database when missing and build the schema from the migration."""
    admin_url = sa.engine.make_url(DB_URL).set(database="postgres")
    name = sa.engine.make_url(DB_URL).database
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    from flask_migrate import upgrade

    from portal import create_app
    from portal.extensions import db, redis_store

    app = create_app(environ())
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        upgrade()
        redis_store.client.flushdb()
        db.engine.dispose()


def seed_sessions(
    count: int, waha_url: str = "http://127.0.0.1:9", api_key: str = "bench-key", tenants: int = 1
) -> list[dict[str, Any]]:
    """`count` session rows (status WORKING) spread over `tenants` tenants, bulk-inserted; returns id/key/name."""
    from portal import create_app
    from portal.extensions import db
    from portal.models import Tenant, WahaServer, WahaSession

    app = create_app(environ(WAHA_BASE_URL=waha_url, WAHA_API_KEY=api_key))
    out = []
    with app.app_context():
        server = WahaServer(name="bench", base_url=waha_url, api_key=api_key, capacity=count + 10)
        owners = [Tenant(slug=f"bench-{n}", name=f"Bench {n}") for n in range(tenants)]
        db.session.add_all([server, *owners])
        db.session.flush()
        rows = []
        for n in range(count):
            key = secrets.token_hex(24)
            row = WahaSession(
                tenant_id=owners[n % tenants].id,
                server_id=server.id,
                name=f"bench-{n}",
                external_name=f"bench_{n:05d}",
                status="WORKING",
                desired_state="running",
                hmac_key=key,
                webhook_events=[],
                config={},
            )
            rows.append(row)
        db.session.add_all(rows)
        db.session.commit()
        out = [{"id": r.id, "key": r.hmac_key, "name": r.external_name, "tenant_id": r.tenant_id} for r in rows]
        db.engine.dispose()
    return out


_counter = [0]


def event(session: dict[str, Any], text: str = "benchmark message", *, stamp_ms: int | None = None) -> dict:
    """A ~1.3 KB GOWS `message` event for `session`, unique id each call."""
    _counter[0] += 1
    n = _counter[0]
    wa_id = f"BENCH{os.getpid():06d}{n:012d}"
    chat = f"4915{n % 10_000_000:09d}@c.us"
    return {
        "id": f"evt_bench{os.getpid()}_{n}_{secrets.token_hex(4)}",
        "timestamp": stamp_ms or int(time.time() * 1000),
        "event": "message",
        "session": session["name"],
        "metadata": {"portal.tenant_id": str(session["tenant_id"]), "portal.session_id": session["id"]},
        "me": {"id": "491701234567@c.us", "pushName": "Bench"},
        "payload": {
            "id": f"false_{chat}_{wa_id}",
            "timestamp": int(time.time()),
            "from": chat,
            "fromMe": False,
            "source": "app",
            "body": text,
            "to": None,
            "participant": None,
            "hasMedia": False,
            "media": None,
            "ack": 2,
            "location": None,
            "vCards": [],
            "ackName": "DEVICE",
            "replyTo": None,
            "_data": {
                "Info": {
                    "Chat": chat.replace("@c.us", "@s.whatsapp.net"),
                    "Sender": chat.replace("@c.us", "@s.whatsapp.net"),
                    "IsFromMe": False,
                    "IsGroup": False,
                    "ID": wa_id,
                    "Type": "text",
                    "PushName": "Bench Contact",
                    "Timestamp": "2026-01-01T00:01:40Z",
                },
                "Message": {"conversation": text},
            },
        },
        "engine": "GOWS",
        "environment": {
            "version": "2026.7.1",
            "engine": "GOWS",
            "tier": "CORE",
            "browser": None,
            "platform": "linux/x64",
            "worker": {"id": None},
        },
    }


def body_and_signature(session: dict[str, Any], payload: Any) -> tuple[bytes, str]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return body, hmac.new(session["key"].encode(), body, hashlib.sha512).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")
