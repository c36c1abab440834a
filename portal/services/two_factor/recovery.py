"""Recovery codes: ten single-use codes, shown once, stored as sha256 (80 random bits each, so a plain hash is
enough). Using one is one conditional UPDATE: two parallel uses of a code cannot both pass."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import delete, func, select, update

from portal.extensions import db
from portal.models import RecoveryCode, User, rowcount, utcnow
from portal.services import audit
from portal.services.audit import Actor

COUNT = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper
_LENGTH = 16  # ~79 bits


def _normal(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _digest(code: str) -> str:
    return hashlib.sha256(_normal(code).encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, _LENGTH, 4))


def generate(user: User) -> list[str]:
    """Replace the user's recovery codes with COUNT new ones; returns them (the caller shows them once and
    commits)."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_code() for _ in range(COUNT)]
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_digest(code), created_at=utcnow()) for code in codes)
    db.session.flush()
    return codes


def regenerate(user: User, actor: Actor) -> list[str]:
    """New recovery codes for the user (the old ones stop working); audited."""
    codes = generate(user)
    audit.record(None, "user.recovery_codes_regenerated", actor, target_type="user", target_id=user.id)
    db.session.commit()
    return codes


def remaining(user: User) -> int:
    """How many unused recovery codes the user has."""
    stmt = select(func.count()).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    return int(db.session.scalar(stmt) or 0)


def use(user: User, code: str) -> bool:
    """Spend one of the user's recovery codes; False when it is not theirs or was used. The caller commits."""
    if len(_normal(code)) != _LENGTH:
        return False
    result = db.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _digest(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    return rowcount(result) == 1
