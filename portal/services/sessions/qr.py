"""Linking a phone: the QR code (cached in Redis for a few seconds across all viewers), the pairing code, and the
screenshot of the running session."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis

from portal.extensions import db, redis_store
from portal.i18n import N_, N_f
from portal.models import Tenant, WahaSession, utcnow
from portal.permissions import LINK_PHONE
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Conflict, Forbidden, Upstream
from portal.services.recipients import phone_digits
from portal.services.sessions.qr_cache import QR_CACHE_SECONDS, _qr_key
from portal.services.sessions.reading import _client, get_session
from portal.services.sessions.status import apply_status
from portal.services.waha_errors import map_waha_error
from portal.waha import errors as waha_errors

log = logging.getLogger(__name__)

QR_LOCK_SECONDS = 5.0
QR_WAIT_SECONDS = 1.0
QR_FIRST_LIFETIME = 60
QR_NEXT_LIFETIME = 20


@dataclass(frozen=True)
class QrCode:
    """A QR image to scan: base64 `data` of `mimetype`, and the estimated seconds until WhatsApp rotates it."""

    mimetype: str
    data: str
    expires_in: int | None


def _expires_in(session: WahaSession) -> int | None:
    """Seconds until the shown QR rotates, from when the session entered SCAN_QR_CODE (first ~60 s, then ~20 s)."""
    if session.status_changed_at is None:
        return None
    elapsed = (utcnow() - session.status_changed_at).total_seconds()
    if elapsed < 0:
        return None
    if elapsed < QR_FIRST_LIFETIME:
        return max(1, int(QR_FIRST_LIFETIME - elapsed))
    return max(1, int(QR_NEXT_LIFETIME - (elapsed - QR_FIRST_LIFETIME) % QR_NEXT_LIFETIME))


def _not_ready(session: WahaSession, status: str | None = None, expected: str = "SCAN_QR_CODE") -> Conflict:
    status = status or session.status
    return Conflict(
        N_f("The session is %(status)s; it must be %(expected)s for this.", status=status, expected=expected),
        code="session_not_ready",
        details={"status": status, "expected": [expected]},
    )


def _qr_from_cache(raw: bytes | str, session: WahaSession) -> QrCode:
    cached = json.loads(raw)
    if "status" in cached:
        raise _not_ready(session, cached["status"])
    return QrCode(mimetype=cached["mimetype"], data=cached["data"], expires_in=_expires_in(session))


def _fetch_qr(session: WahaSession) -> dict:
    """One QR call to WAHA; a status mismatch is recorded on the session and answered as a negative entry."""
    try:
        return _client(session).get_qr(session.external_name)
    except waha_errors.WahaSessionNotReady as exc:
        if exc.session_status:
            apply_status(session, exc.session_status, source="qr")
            db.session.commit()
        return {"status": exc.session_status or session.status}
    except waha_errors.WahaError as exc:
        raise map_waha_error(exc, session) from exc


def get_qr(tenant: Tenant, session_id: Any) -> QrCode:
    """The QR to scan, only while the session is in SCAN_QR_CODE (else Conflict "session_not_ready").

    The answer is cached in Redis under `qr:<session id>` for a few seconds, and only the holder of a short
    lock asks WAHA when the cache is empty; other viewers wait up to a second for its answer. So any number of
    viewers costs WAHA at most one QR call per cache window.
    """
    session = get_session(tenant, session_id)
    if session.status != "SCAN_QR_CODE":
        raise _not_ready(session)
    key, lock = _qr_key(session.id), _qr_key(session.id) + ":lock"
    try:
        client = redis_store.client
        cached = client.get(key)
        if cached:
            return _qr_from_cache(cached, session)
        token = secrets.token_hex(8)
        deadline = time.monotonic() + QR_WAIT_SECONDS
        while True:
            if client.set(lock, token, nx=True, px=int(QR_LOCK_SECONDS * 1000)):
                try:
                    cached = client.get(key)
                    if cached:
                        return _qr_from_cache(cached, session)
                    answer = _fetch_qr(session)
                    raw = json.dumps(answer)
                    client.set(key, raw, px=int(QR_CACHE_SECONDS * 1000))
                    return _qr_from_cache(raw.encode(), session)
                finally:
                    if client.get(lock) == token.encode():
                        client.delete(lock)
            time.sleep(0.05)
            cached = client.get(key)
            if cached:
                return _qr_from_cache(cached, session)
            if time.monotonic() > deadline:
                raise Upstream(N_("WAHA is slow to hand out the QR code; try again in a second."), retry_after=1)
    except redis.RedisError:
        log.warning("QR cache unavailable; asking WAHA directly", exc_info=True)
        return _qr_from_cache(json.dumps(_fetch_qr(session)).encode(), session)


def request_pairing_code(tenant: Tenant, session_id: Any, phone: str, actor: Actor) -> str:
    """A code ("ABCD-EFGH") to type on the phone instead of scanning the QR; session must be in SCAN_QR_CODE."""
    session = get_session(tenant, session_id)
    digits = phone_digits(phone, "phone")
    if session.status != "SCAN_QR_CODE":
        raise _not_ready(session)
    try:
        code = _client(session).request_pairing_code(session.external_name, digits)
    except waha_errors.WahaError as exc:
        if isinstance(exc, waha_errors.WahaSessionNotReady) and exc.session_status:
            apply_status(session, exc.session_status, source="pairing")
            db.session.commit()
        raise map_waha_error(exc, session) from exc
    # The code itself is a credential for a few minutes: it stays out of the audit log.
    audit.record(
        tenant.id,
        "session.pairing_code",
        actor,
        target_type="session",
        target_id=session.id,
        details={"phone_suffix": digits[-4:]},
        commit=True,
    )
    return code


def get_screenshot(tenant: Tenant, session_id: Any, *, may_link: bool = True) -> dict:
    """A screenshot of the running session as {"mimetype", "data" (base64)}; Conflict while it is stopped.

    While the session waits for a scan the screen is its QR code: a caller that may not link a phone
    (`may_link=False`, see permissions.LINK_PHONE) is refused then.
    """
    session = get_session(tenant, session_id)
    if session.status == "STOPPED":
        raise _not_ready(session, expected="running")
    if session.status == "SCAN_QR_CODE" and not may_link:
        raise Forbidden(
            N_(
                "The screen shows the QR code while the session waits for a scan; seeing it needs the "
                "permission to link a phone."
            ),
            details={"required": LINK_PHONE},
        )
    try:
        shot = _client(session).get_screenshot(session.external_name)
    except waha_errors.WahaNotFound:
        # WAHA answers 404 for a session that is not running.
        raise _not_ready(session, "STOPPED", expected="running") from None
    except waha_errors.WahaError as exc:
        raise map_waha_error(exc, session) from exc
    return {"mimetype": _sniffed_mimetype(shot["data"]) or shot["mimetype"], "data": shot["data"]}


def _sniffed_mimetype(data: str) -> str | None:
    # GOWS and NOWEB send the QR as PNG but label it image/jpeg; the bytes tell the truth.
    try:
        head = base64.b64decode(data[:16])
    except (binascii.Error, ValueError):
        return None
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None
